"""The composite reward of 002 §2.5: R_total = λf R_f + λa R_a + λs R_s + λc R_c (all λ = 1).

* R_f: 1 when the response parses strictly (:mod:`.answer`), else 0; a malformed response gets 0
  for every term (there is no slice or box to score).
* R_a = F_k̂ / max_t F_t: target visibility on the chosen key slice.
* R_s: Hungarian matching (scipy ``linear_sum_assignment``) on C = 1 - IoU between the predicted
  boxes and the connected-component boxes of the target on the predicted key slice; the sum of
  matched IoUs over max(N, N*).
* R_c: the *matched* predicted boxes prompt the propagator, and the Dice of the propagated mask
  against the target on the slices |t - k̂| <= Δ (Δ = 5 in the paper).

A weight of 0 removes a term (the "w/o R_c" ablation of Table 2(a) is ``weights["c"] = 0``; the
propagator is then not run).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from lib.metrics.boxes import iou_matrix

from .answer import FormatFailure, Parsed, ParsedAnswer
from .targets import component_boxes, slice_areas

#: term -> weight; the paper sets all four to 1.0
DEFAULT_WEIGHTS: dict[str, float] = {"f": 1.0, "a": 1.0, "s": 1.0, "c": 1.0}

#: (sequence image (T, S, S), key slice 0-based, boxes (N, 4)) -> propagated (T, S, S) bool mask
Propagate = Callable[[np.ndarray, int, np.ndarray], np.ndarray]


@dataclass
class RewardTerms:
    f: float = 0.0
    a: float = 0.0
    s: float = 0.0
    c: float = 0.0
    total: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def axial_reward(seq_mask: np.ndarray, k: int) -> float:
    """R_a = F_k / max_t F_t (0 when the target is empty everywhere)."""
    areas = slice_areas(seq_mask)
    return float(areas[k] / areas.max()) if areas.max() > 0 else 0.0


def hungarian_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """R_s and the matched (pred, truth) index pairs; 0 when either side is empty."""
    pred, truth = np.ascontiguousarray(pred, float).reshape(-1, 4), np.ascontiguousarray(truth, float).reshape(-1, 4)
    if len(pred) == 0 or len(truth) == 0:
        return 0.0, []
    iou = iou_matrix(pred, truth).numpy()
    rows, cols = linear_sum_assignment(1.0 - iou)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols)]
    return float(sum(iou[r, c] for r, c in pairs) / max(len(pred), len(truth))), pairs


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks; 1 when both are empty (nothing to find, nothing found)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else float(2.0 * np.logical_and(a, b).sum() / denom)


def local_dice(pred: np.ndarray, truth: np.ndarray, k: int, delta: int) -> float:
    """Dice restricted to the slices |t - k| <= delta."""
    lo, hi = max(0, k - delta), min(truth.shape[0], k + delta + 1)
    return dice(pred[lo:hi], truth[lo:hi])


def compute_rewards(
    parsed: Parsed,
    seq_image: np.ndarray,
    seq_mask: np.ndarray,
    propagate: Optional[Propagate],
    weights: Optional[Mapping[str, float]] = None,
    delta: int = 5,
) -> RewardTerms:
    """All terms for one response to one query (``seq_mask``: the target on the slice sequence)."""
    w = dict(DEFAULT_WEIGHTS, **(weights or {}))
    r = RewardTerms()
    if isinstance(parsed, FormatFailure) or not isinstance(parsed, ParsedAnswer):
        return r
    k = parsed.slice_index
    if not 0 <= k < seq_mask.shape[0]:
        return r
    r.f = 1.0
    r.a = axial_reward(seq_mask, k)
    pred = np.asarray(parsed.boxes, float).reshape(-1, 4)
    r.s, pairs = hungarian_iou(pred, component_boxes(seq_mask[k]))
    if w["c"] != 0.0 and propagate is not None and pairs:
        matched = pred[[p for p, _ in pairs]]
        r.c = local_dice(propagate(seq_image, k, matched), seq_mask, k, delta)
    r.total = float(w["f"] * r.f + w["a"] * r.a + w["s"] * r.s + w["c"] * r.c)
    return r


def group_rewards(parsed: Sequence[Parsed], seq_image, seq_mask, propagate, weights=None, delta: int = 5) -> list[RewardTerms]:
    return [compute_rewards(p, seq_image, seq_mask, propagate, weights, delta) for p in parsed]
