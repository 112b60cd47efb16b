"""Lesion-level metrics of GLeVE (000, eq. 9): lesion recall (LR) and lesion localisation score (LLS).

Lesion instances are connected components of the prediction and the ground truth; a GT lesion
matches a predicted one when their Dice is >= 0.1, with a one-to-one Hungarian assignment that
maximises Dice. Then

    LR  = N_matched / N_gt
    LLS = 1/N_gt * sum_i Dice(i, pi(i)) * exp(-d_i / d0),   d0 = 20 mm, Dice = 0 when unmatched

with d_i the centroid distance in mm (anisotropic spacing respected).

With no GT lesion, LR and LLS are undefined (NaN) for that study; :func:`aggregate` then gives
both the micro figure (matches summed over all GT lesions of the set) and the macro mean over the
studies that have lesions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from lib.anatomy.labels import ABDOMEN_ORGANS, organ_group

DICE_MATCH_THRESHOLD = 0.1
D0_MM = 20.0


def lesion_instances(mask, instances: str = "components", connectivity: int = 3) -> tuple[np.ndarray, int]:
    """Instance map (0 = background, 1..n) of ``mask``.

    ``instances="components"``: connected components of ``mask > 0`` (``connectivity`` 1, 2 or 3 as
    in :func:`scipy.ndimage.generate_binary_structure`; 3 = 26-neighbourhood).
    ``instances="labels"``: keep the ids already in an instance map, renumbered 1..n.
    """
    a = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    if instances == "components":
        structure = ndimage.generate_binary_structure(a.ndim, connectivity)
        lab, n = ndimage.label(a > 0, structure=structure)
        return lab.astype(np.int32), int(n)
    if instances == "labels":
        ids = np.unique(a[a > 0])
        lut = np.zeros(int(a.max(initial=0)) + 1, np.int32)
        lut[ids.astype(np.int64)] = np.arange(1, len(ids) + 1)
        return lut[a.astype(np.int64)], int(len(ids))
    raise ValueError(f"instances must be 'components' or 'labels', not {instances!r}")


def pairwise_dice(gt_inst: np.ndarray, n_gt: int, pred_inst: np.ndarray, n_pred: int) -> np.ndarray:
    """(n_gt, n_pred) Dice matrix in one pass over the overlap voxels (bincount, not n*m volume scans)."""
    gt_sizes = np.bincount(gt_inst.ravel(), minlength=n_gt + 1)[1:]
    pred_sizes = np.bincount(pred_inst.ravel(), minlength=n_pred + 1)[1:]
    both = (gt_inst > 0) & (pred_inst > 0)
    pair = gt_inst[both].astype(np.int64) * (n_pred + 1) + pred_inst[both].astype(np.int64)
    inter = np.bincount(pair, minlength=(n_gt + 1) * (n_pred + 1)).reshape(n_gt + 1, n_pred + 1)[1:, 1:]
    denom = gt_sizes[:, None] + pred_sizes[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * inter / denom, 0.0)


def centroids_mm(inst: np.ndarray, n: int, spacing: Sequence[float]) -> np.ndarray:
    """(n, 3) centroids in mm (voxel index times spacing)."""
    if n == 0:
        return np.zeros((0, inst.ndim))
    c = np.asarray(ndimage.center_of_mass(np.ones_like(inst), inst, index=np.arange(1, n + 1)), float)
    return c.reshape(n, inst.ndim) * np.asarray(spacing, float)


@dataclass
class LesionMatch:
    gt_id: int
    pred_id: int
    dice: float
    distance_mm: float


@dataclass
class LesionScore:
    n_gt: int
    n_pred: int
    matches: list[LesionMatch] = field(default_factory=list)
    d0_mm: float = D0_MM

    @property
    def n_matched(self) -> int:
        return len(self.matches)

    @property
    def false_positives(self) -> int:
        return self.n_pred - self.n_matched

    @property
    def lesion_recall(self) -> float:
        return self.n_matched / self.n_gt if self.n_gt else math.nan

    @property
    def lls_sum(self) -> float:
        return float(sum(m.dice * math.exp(-m.distance_mm / self.d0_mm) for m in self.matches))

    @property
    def lesion_localisation_score(self) -> float:
        return self.lls_sum / self.n_gt if self.n_gt else math.nan


def match_lesions(
    pred,
    gt,
    spacing: Sequence[float],
    dice_threshold: float = DICE_MATCH_THRESHOLD,
    d0_mm: float = D0_MM,
    pred_instances: str = "components",
    gt_instances: str = "components",
) -> LesionScore:
    """Match predicted to GT lesions (Hungarian on Dice, kept when Dice >= threshold) and score them."""
    gt_inst, n_gt = lesion_instances(gt, gt_instances)
    pred_inst, n_pred = lesion_instances(pred, pred_instances)
    if gt_inst.shape != pred_inst.shape:
        raise ValueError(f"shape mismatch {pred_inst.shape} vs {gt_inst.shape}")
    score = LesionScore(n_gt=n_gt, n_pred=n_pred, d0_mm=d0_mm)
    if n_gt == 0 or n_pred == 0:
        return score
    d = pairwise_dice(gt_inst, n_gt, pred_inst, n_pred)
    rows, cols = linear_sum_assignment(-d)
    c_gt, c_pred = centroids_mm(gt_inst, n_gt, spacing), centroids_mm(pred_inst, n_pred, spacing)
    for r, c in zip(rows, cols):
        if d[r, c] >= dice_threshold:
            dist = float(np.linalg.norm(c_gt[r] - c_pred[c]))
            score.matches.append(LesionMatch(gt_id=int(r + 1), pred_id=int(c + 1), dice=float(d[r, c]), distance_mm=dist))
    return score


def lesion_recall(pred, gt, spacing: Sequence[float], **kw) -> float:
    return match_lesions(pred, gt, spacing, **kw).lesion_recall


def lesion_localisation_score(pred, gt, spacing: Sequence[float], **kw) -> float:
    return match_lesions(pred, gt, spacing, **kw).lesion_localisation_score


def aggregate(scores: Sequence[LesionScore]) -> dict[str, float]:
    """Dataset figures: micro (pooled over all GT lesions) and macro (mean over studies with lesions)."""
    n_gt = sum(s.n_gt for s in scores)
    with_gt = [s for s in scores if s.n_gt]
    return {
        "n_studies": len(scores),
        "n_gt": n_gt,
        "n_pred": sum(s.n_pred for s in scores),
        "n_matched": sum(s.n_matched for s in scores),
        "false_positives": sum(s.false_positives for s in scores),
        "LR_micro": sum(s.n_matched for s in scores) / n_gt if n_gt else math.nan,
        "LLS_micro": sum(s.lls_sum for s in scores) / n_gt if n_gt else math.nan,
        "LR_macro": float(np.mean([s.lesion_recall for s in with_gt])) if with_gt else math.nan,
        "LLS_macro": float(np.mean([s.lesion_localisation_score for s in with_gt])) if with_gt else math.nan,
    }


_ORGAN_NAME_OF_ID = {v: k for k, v in ABDOMEN_ORGANS.items()}


def organ_group_at(organ_map: np.ndarray, region: np.ndarray) -> str:
    """Organ group under most of ``region`` ('other' outside every organ)."""
    ids = np.asarray(organ_map)[region]
    ids = ids[ids > 0]
    if ids.size == 0:
        return "other"
    return organ_group(_ORGAN_NAME_OF_ID.get(int(np.bincount(ids).argmax()), "other"))


def lesion_groups(gt_instances: np.ndarray, organ_map: np.ndarray, gt_organ: Optional[Mapping[int, str]] = None) -> dict[int, str]:
    """GT lesion id -> organ group: ``gt_organ[id]`` when given (the report's truth), else the organ map's."""
    gt = np.asarray(gt_instances)
    out = {}
    for i in np.unique(gt[gt > 0]).astype(int):
        name = (gt_organ or {}).get(int(i))
        out[int(i)] = organ_group(name) if name else organ_group_at(organ_map, gt == i)
    return out


def per_organ_lesion_scores(
    pred,
    gt_instances: np.ndarray,
    organ_map: np.ndarray,
    spacing: Sequence[float],
    gt_organ: Optional[Mapping[int, str]] = None,
    **kw,
) -> dict[str, LesionScore]:
    """LR/LLS split by organ group (liver / kidney / pancreas), as in 000 Table 1.

    GT lesions are grouped by :func:`lesion_groups`; a matched prediction belongs to its GT lesion's
    group, an unmatched one to the organ under its centroid. ``gt_instances`` keeps its own ids.
    """
    gt_raw = np.asarray(gt_instances)
    groups_by_original = lesion_groups(gt_raw, organ_map, gt_organ)
    gt_inst, _ = lesion_instances(gt_raw, "labels")  # ids renumbered 1..n in sorted order
    gt_group = {new: groups_by_original[orig] for new, orig in enumerate(sorted(groups_by_original), start=1)}
    score = match_lesions(pred, gt_inst, spacing, gt_instances="labels", **kw)
    pred_inst, n_pred = lesion_instances(pred, "components")
    organ_map = np.asarray(organ_map)

    out: dict[str, LesionScore] = {}
    for g in sorted(set(gt_group.values())):
        out[g] = LesionScore(n_gt=sum(1 for v in gt_group.values() if v == g), n_pred=0, d0_mm=score.d0_mm)
    matched_pred = set()
    for m in score.matches:
        g = gt_group[m.gt_id]
        out[g].matches.append(m)
        out[g].n_pred += 1
        matched_pred.add(m.pred_id)
    if n_pred:
        cents = np.rint(np.asarray(ndimage.center_of_mass(np.ones_like(pred_inst), pred_inst, range(1, n_pred + 1)))).astype(int)
        for pid in range(1, n_pred + 1):
            if pid in matched_pred:
                continue
            i, j, k = np.clip(cents[pid - 1], 0, np.asarray(organ_map.shape) - 1)
            oid = int(organ_map[i, j, k])
            g = organ_group(_ORGAN_NAME_OF_ID.get(oid, "other")) if oid else "other"
            out.setdefault(g, LesionScore(n_gt=0, n_pred=0, d0_mm=score.d0_mm)).n_pred += 1
    return out
