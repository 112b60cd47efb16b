"""Uncertainty, report inconsistency and model disagreement as numbers in [0, 1].

Pure functions of what a grounding model answered (the per-lesion records of
:mod:`lib.activelearning.grounding`), so they are tested without a model. Every study score is a
mean of per-lesion or per-study terms, each bounded to [0, 1], so studies with many or few
lesions compare on one scale. A lesion the model could not ground at all scores the maximum on
every term: "the model has nothing to say" is exactly what an annotator should look at.
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Mapping, Optional, Sequence

import numpy as np

#: HU errors are relative to max(|reported HU|, HU_FLOOR), as GLeVE's L_attr does (cysts near 0 HU).
HU_FLOOR = 20.0


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def mean_or_none(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else None


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary masks; two empty masks agree (1.0)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else float(2.0 * np.logical_and(a, b).sum() / s)


# --------------------------------------------------------------------------- uncertainty

def normalised_entropy(entropy: Optional[float], n_candidates: int) -> float:
    """Candidate entropy (000 eq. 5) as a fraction of its maximum log K: 0 = one candidate
    dominates, 1 = all K equally likely. No candidate at all -> 1; one candidate -> 0."""
    if n_candidates <= 0 or entropy is None:
        return 1.0
    if n_candidates == 1:
        return 0.0
    return _clip01(float(entropy) / math.log(n_candidates))


def lesion_uncertainty(rec: Mapping[str, Any], entropy_weight: float = 0.5) -> float:
    """Uncertainty of one grounded description: ``entropy_weight`` x normalised candidate entropy
    + (1 - entropy_weight) x TTA disagreement (1 - mean Dice of the augmented masks with the plain
    one). Without TTA the entropy alone; an ungrounded description -> 1."""
    if not rec.get("grounded"):
        return 1.0
    h = normalised_entropy(rec.get("candidate_entropy"), int(rec.get("n_candidates") or 0))
    tta = rec.get("tta_disagreement")
    if tta is None:
        return h
    w = _clip01(entropy_weight)
    return w * h + (1.0 - w) * _clip01(float(tta))


def study_uncertainty(lesions: Sequence[Mapping[str, Any]], entropy_weight: float = 0.5) -> Optional[float]:
    """Mean :func:`lesion_uncertainty` over the report's lesion descriptions (None without any)."""
    return mean_or_none([lesion_uncertainty(r, entropy_weight) for r in lesions])


# --------------------------------------------------------------------------- inconsistency

def volume_inconsistency(measured_ml: Optional[float], reported_ml: Optional[float]) -> Optional[float]:
    """|measured - reported| / max(measured, reported): 0 = same volume, 1 = one of them is 0.
    None when the report gives no size."""
    if reported_ml is None or reported_ml <= 0:
        return None
    m = float(measured_ml or 0.0)
    return _clip01(abs(m - reported_ml) / max(m, reported_ml))


def hu_inconsistency(measured_hu: Optional[float], reported: Optional[Sequence[float]]) -> Optional[float]:
    """Distance of the measured mean HU from the reported interval (a stated number is a
    zero-width interval), relative to max(|interval centre|, HU_FLOOR), capped at 1. None when the
    report says nothing about density; 1 when the mask has no voxel to measure."""
    if reported is None:
        return None
    lo, hi = float(min(reported)), float(max(reported))
    if measured_hu is None or not math.isfinite(float(measured_hu)):
        return 1.0
    m = float(measured_hu)
    dist = max(lo - m, 0.0, m - hi)
    return _clip01(dist / max(abs(0.5 * (lo + hi)), HU_FLOOR))


def count_inconsistency(reported: int, grounded: int) -> Optional[float]:
    """|lesions the report counts - lesions grounded| / lesions the report counts (capped at 1)."""
    if reported <= 0:
        return None
    return _clip01(abs(reported - grounded) / reported)


def study_inconsistency(lesions: Sequence[Mapping[str, Any]]) -> tuple[Optional[float], dict[str, Optional[float]]]:
    """Mean of the available terms: count, mean volume and mean HU inconsistency over the lesions.

    Each record: ``reported_count`` (a "two cysts" sentence counts 2), ``grounded_count``
    (connected components of its mask), ``measured_volume_ml``, ``reported_volume_ml``,
    ``measured_hu``, ``reported_hu_interval``. Returns (score or None, the terms)."""
    if not lesions:
        return None, {"count": None, "volume": None, "hu": None}
    count = count_inconsistency(sum(int(r.get("reported_count") or 1) for r in lesions), sum(int(r.get("grounded_count") or 0) for r in lesions))
    volume = mean_or_none([volume_inconsistency(r.get("measured_volume_ml"), r.get("reported_volume_ml")) for r in lesions])
    hu = mean_or_none([hu_inconsistency(r.get("measured_hu"), r.get("reported_hu_interval")) for r in lesions])
    terms = {"count": count, "volume": volume, "hu": hu}
    return mean_or_none(list(terms.values())), terms


# --------------------------------------------------------------------------- disagreement

def mask_disagreement(masks: Sequence[np.ndarray]) -> Optional[float]:
    """1 - mean pairwise Dice of binary lesion masks from different models (None for < 2 masks)."""
    if len(masks) < 2:
        return None
    return _clip01(1.0 - float(np.mean([dice(a, b) for a, b in combinations(masks, 2)])))
