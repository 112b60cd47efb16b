"""Lesion-level metrics of GLeVE (000, "Evaluation metrics" and eq. 9): lesion recall (LR) and
lesion localisation score (LLS).

Procedure (one study):

1. Lesion instances: connected components of ``pred > 0`` and ``gt > 0`` (26-connectivity in 3D,
   8 in 2D, configurable), or -- with ``instances="labels"`` -- the ids already present in an
   instance map (each distinct id > 0 is one lesion, touching or not, connected or not).
2. Pairwise Dice between every GT and every predicted instance, from one pass over the voxels
   where both are foreground (a ``np.unique`` of id pairs plus ``bincount`` sizes): only
   overlapping pairs are ever touched, never ``n * m`` full-volume scans.
3. Pairs with Dice < ``dice_threshold`` (0.1) are *ineligible*. A one-to-one assignment
   maximising the summed Dice over eligible pairs is found with the Hungarian algorithm
   (``scipy.optimize.linear_sum_assignment``), solved separately on each connected block of the
   eligible-pair graph. (Thresholding *before* the assignment matters: assigning on the raw
   matrix and thresholding afterwards can trade one valid match for two sub-threshold pairs
   and lose it.)
4. For each match, ``d_i`` = distance in mm between the two instances' centroids (voxel centroid
   times spacing, so anisotropic voxels count in mm; an affine may be given instead of spacing,
   then world coordinates are used).

Then, with ``N_gt`` GT lesions and ``N_matched`` matches::

    LR  = N_matched / N_gt
    LLS = 1/N_gt * sum_i Dice(i, pi(i)) * exp(-d_i / d0),   d0 = 20 mm, Dice = 0 for unmatched GT

Edge cases: ``N_gt = 0`` -> LR and LLS are undefined and returned as NaN (the study still reports
``N_pred`` and its false positives, all of its predictions). ``N_pred = 0 < N_gt`` -> LR = LLS = 0.

Dataset aggregation (:func:`aggregate`) gives both

* micro: matches and LLS terms summed over all studies, divided by the total number of GT lesions
  (every lesion weighs the same; studies without lesions contribute only false positives);
* macro: the mean of the per-study LR / LLS over the studies with ``N_gt > 0`` (every study
  weighs the same; NaN studies are excluded and counted in ``n_studies_without_gt``).

Per-organ split (:func:`per_organ_lesion_metrics`, 000 Table 1): GT lesions are grouped by organ
group (liver / kidney / pancreas; both kidneys are 'kidney'); the matching is done once over the
whole study, then each matched prediction goes with its GT lesion's group and each unmatched
prediction with the organ under its centroid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lib.anatomy.labels import ABDOMEN_ORGANS, organ_group

DICE_MATCH_THRESHOLD = 0.1
D0_MM = 20.0
OTHER_GROUP = "other"

__all__ = [
    "DICE_MATCH_THRESHOLD",
    "D0_MM",
    "LesionMatch",
    "LesionScore",
    "LesionMetrics",
    "lesion_instances",
    "pairwise_dice",
    "centroids_mm",
    "match_lesions",
    "lesion_recall",
    "lesion_localisation_score",
    "aggregate",
    "aggregate_per_organ",
    "lesion_groups",
    "per_organ_lesion_metrics",
    "per_organ_lesion_scores",
]


# --------------------------------------------------------------------------- instances

_CONNECTIVITY_BY_NEIGHBOURS = {2: {4: 1, 8: 2}, 3: {6: 1, 18: 2, 26: 3}}


def _to_numpy(x) -> np.ndarray:
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    while a.ndim > 3 and a.shape[0] == 1:  # (1, X, Y, Z) channel-first tensors
        a = a[0]
    if a.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D map, got shape {a.shape}")
    return a


def _structure(ndim: int, connectivity: Optional[int]) -> np.ndarray:
    if connectivity is None:
        rank = ndim  # full neighbourhood: 26 in 3D, 8 in 2D
    elif 1 <= connectivity <= ndim:
        rank = int(connectivity)  # scipy's rank convention: 1 = faces, ..., ndim = full
    elif connectivity in _CONNECTIVITY_BY_NEIGHBOURS.get(ndim, {}):
        rank = _CONNECTIVITY_BY_NEIGHBOURS[ndim][connectivity]
    else:
        raise ValueError(f"connectivity {connectivity} is not valid in {ndim}D (use 6/18/26, 4/8 or 1..ndim)")
    return ndimage.generate_binary_structure(ndim, rank)


def _instances(mask, instances: str, connectivity: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """Instance map renumbered 1..n (int32) and the original id of each instance (length n)."""
    a = _to_numpy(mask)
    if instances == "components":
        lab, n = ndimage.label(a > 0, structure=_structure(a.ndim, connectivity))
        return lab.astype(np.int32, copy=False), np.arange(1, n + 1)
    if instances == "labels":
        if a.dtype.kind == "f" and np.any(a != np.round(a)):
            raise ValueError("instances='labels' needs an integer instance map")
        if a.dtype.kind not in "iub":
            a = np.rint(a)
        fg = a > 0
        values = a[fg].astype(np.int64)
        ids = np.unique(values)
        lab = np.zeros(a.shape, np.int32)
        if ids.size:
            if ids[-1] <= 10_000_000:  # compact ids: a lookup table
                lut = np.zeros(int(ids[-1]) + 1, np.int32)
                lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
                lab[fg] = lut[values]
            else:
                lab[fg] = np.searchsorted(ids, values).astype(np.int32) + 1
        return lab, ids
    raise ValueError(f"instances must be 'components' or 'labels', not {instances!r}")


def lesion_instances(mask, instances: str = "components", connectivity: Optional[int] = None) -> tuple[np.ndarray, int]:
    """Instance map (0 = background, lesions 1..n, int32) of ``mask`` and ``n``.

    ``instances="components"``: connected components of ``mask > 0``. ``connectivity``: ``None``
    (default) = full neighbourhood (26 in 3D, 8 in 2D); or 6 / 18 / 26 (3D), 4 / 8 (2D); or
    scipy's rank 1..ndim (1 = face neighbours only). An instance map is binarised first, so
    touching instances merge.
    ``instances="labels"``: ``mask`` is already an instance map; every distinct id > 0 is one
    lesion, renumbered 1..n in increasing order of the original id (connectivity is ignored).
    """
    lab, ids = _instances(mask, instances, connectivity)
    return lab, int(ids.size)


# --------------------------------------------------------------------------- pairwise

def _overlaps(gt_inst: np.ndarray, pred_inst: np.ndarray, n_pred: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse overlaps: (gt index 1.., pred index 1.., voxel count) for every overlapping pair."""
    both = (gt_inst > 0) & (pred_inst > 0)
    codes = gt_inst[both].astype(np.int64) * (n_pred + 1) + pred_inst[both].astype(np.int64)
    uniq, inter = np.unique(codes, return_counts=True)
    gi, pi = np.divmod(uniq, n_pred + 1)
    return gi, pi, inter


def _sparse_dice(gt_inst, n_gt, pred_inst, n_pred):
    if gt_inst.shape != pred_inst.shape:
        raise ValueError(f"shape mismatch: pred {pred_inst.shape} vs gt {gt_inst.shape}")
    gt_sizes = np.bincount(gt_inst.ravel(), minlength=n_gt + 1)
    pred_sizes = np.bincount(pred_inst.ravel(), minlength=n_pred + 1)
    gi, pi, inter = _overlaps(gt_inst, pred_inst, n_pred)
    d = 2.0 * inter / (gt_sizes[gi] + pred_sizes[pi])
    return gi, pi, d


def pairwise_dice(gt_inst: np.ndarray, n_gt: int, pred_inst: np.ndarray, n_pred: int) -> np.ndarray:
    """Dense ``(n_gt, n_pred)`` Dice matrix between instance maps numbered 1..n (0 where disjoint).

    Built from one pass over the overlap voxels; for large ``n * m`` prefer :func:`match_lesions`,
    which never materialises the dense matrix.
    """
    gt_inst, pred_inst = np.asarray(gt_inst), np.asarray(pred_inst)
    gi, pi, d = _sparse_dice(gt_inst, n_gt, pred_inst, n_pred)
    out = np.zeros((n_gt, n_pred))
    out[gi - 1, pi - 1] = d
    return out


def _hungarian_sparse(gi: np.ndarray, pi: np.ndarray, w: np.ndarray, n_gt: int, n_pred: int) -> list[tuple[int, int]]:
    """Max-weight one-to-one matching over the given edges (1-based indices), per connected block."""
    if gi.size == 0:
        return []
    adj = coo_matrix((np.ones(gi.size), (gi - 1, n_gt + pi - 1)), shape=(n_gt + n_pred,) * 2)
    _, comp = connected_components(adj, directed=False)
    edge_comp = comp[gi - 1]
    pairs: list[tuple[int, int]] = []
    order = np.argsort(edge_comp, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_comp[order])) + 1
    for block in np.split(order, bounds):
        rows, r_inv = np.unique(gi[block], return_inverse=True)
        cols, c_inv = np.unique(pi[block], return_inverse=True)
        m = np.zeros((rows.size, cols.size))
        m[r_inv, c_inv] = w[block]
        eligible = np.zeros_like(m, bool)
        eligible[r_inv, c_inv] = True
        r, c = linear_sum_assignment(m, maximize=True)
        pairs += [(int(rows[a]), int(cols[b])) for a, b in zip(r, c) if eligible[a, b]]
    return pairs


# --------------------------------------------------------------------------- centroids

def _centroids_vox(inst: np.ndarray, n: int) -> np.ndarray:
    """(n, ndim) voxel-index centroids of instances 1..n (one pass over the foreground voxels)."""
    if n == 0:
        return np.zeros((0, inst.ndim))
    nz = np.nonzero(inst)
    lab = inst[nz]
    cnt = np.bincount(lab, minlength=n + 1)[1:].astype(float)
    sums = np.stack([np.bincount(lab, weights=ax, minlength=n + 1)[1:] for ax in nz], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / cnt[:, None]


def _to_mm(points_vox: np.ndarray, spacing) -> np.ndarray:
    """Voxel coordinates -> mm: ``spacing`` is a per-axis voxel size (or scalar), or an
    ``(ndim+1, ndim+1)`` / 4x4 affine (then world coordinates, e.g. RAS mm)."""
    nd = points_vox.shape[1]
    s = np.asarray(spacing, float)
    if s.ndim == 2:
        if s.shape == (nd + 1, nd + 1):
            return points_vox @ s[:nd, :nd].T + s[:nd, nd]
        if s.shape == (4, 4) and nd == 2:
            return points_vox @ s[:2, :2].T + s[:2, 3]
        raise ValueError(f"affine of shape {s.shape} does not fit {nd}D instances")
    s = np.atleast_1d(s)
    if s.size == 1:
        s = np.repeat(s, nd)
    if s.size != nd:
        raise ValueError(f"spacing {tuple(s)} does not match {nd}D instances")
    return points_vox * s


def centroids_mm(inst: np.ndarray, n: int, spacing) -> np.ndarray:
    """(n, ndim) centroids of instances 1..n in mm (voxel index times spacing, or through an affine).

    Distances between these are world distances: an origin cancels, and an affine's rotation
    preserves them, so spacing alone is enough for centroid distances.
    """
    inst = np.asarray(inst)
    return _to_mm(_centroids_vox(inst, n), spacing)


# --------------------------------------------------------------------------- results

@dataclass
class LesionMatch:
    """One GT lesion matched to one predicted lesion (ids as in the input maps, see match_lesions)."""

    gt_id: int
    pred_id: int
    dice: float
    distance_mm: float

    def lls_term(self, d0_mm: float = D0_MM) -> float:
        """``Dice * exp(-d / d0)``, this match's contribution to N_gt * LLS."""
        return self.dice * math.exp(-self.distance_mm / d0_mm)


@dataclass
class LesionScore:
    """Lesion-level result of one study (or one organ group of a study).

    ``n_gt`` / ``n_pred``: number of GT / predicted instances; ``matches``: the kept Hungarian
    matches; ``gt_ids`` / ``pred_ids``: all instance ids (may be empty when built by hand).
    LR and LLS are NaN when ``n_gt == 0``.
    """

    n_gt: int
    n_pred: int
    matches: list[LesionMatch] = field(default_factory=list)
    d0_mm: float = D0_MM
    gt_ids: list[int] = field(default_factory=list)
    pred_ids: list[int] = field(default_factory=list)

    @property
    def n_matched(self) -> int:
        return len(self.matches)

    @property
    def false_positives(self) -> int:
        """Predicted lesions left unmatched."""
        return self.n_pred - self.n_matched

    @property
    def false_negatives(self) -> int:
        """GT lesions left unmatched (missed)."""
        return self.n_gt - self.n_matched

    @property
    def unmatched_gt_ids(self) -> list[int]:
        hit = {m.gt_id for m in self.matches}
        return [i for i in self.gt_ids if i not in hit]

    @property
    def unmatched_pred_ids(self) -> list[int]:
        hit = {m.pred_id for m in self.matches}
        return [i for i in self.pred_ids if i not in hit]

    @property
    def lesion_recall(self) -> float:
        """LR = N_matched / N_gt (NaN when N_gt = 0)."""
        return self.n_matched / self.n_gt if self.n_gt else math.nan

    @property
    def lls_sum(self) -> float:
        """sum_i Dice_i * exp(-d_i / d0) over the matches (= N_gt * LLS)."""
        return float(sum(m.lls_term(self.d0_mm) for m in self.matches))

    @property
    def lesion_localisation_score(self) -> float:
        """LLS of 000 eq. 9 (NaN when N_gt = 0)."""
        return self.lls_sum / self.n_gt if self.n_gt else math.nan

    # the paper's notation
    N_gt = property(lambda self: self.n_gt)
    N_pred = property(lambda self: self.n_pred)
    N_matched = property(lambda self: self.n_matched)
    LR = property(lambda self: self.lesion_recall)
    LLS = property(lambda self: self.lesion_localisation_score)

    def as_dict(self) -> dict:
        return {
            "N_gt": self.n_gt,
            "N_pred": self.n_pred,
            "N_matched": self.n_matched,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "LR": self.lesion_recall,
            "LLS": self.lesion_localisation_score,
            "matches": [vars(m).copy() for m in self.matches],
        }


LesionMetrics = LesionScore  # the name the brief / callers may prefer


# --------------------------------------------------------------------------- matching

def _match_instances(gt_inst, gt_ids, pred_inst, pred_ids, spacing, dice_threshold, d0_mm) -> LesionScore:
    n_gt, n_pred = int(gt_ids.size), int(pred_ids.size)
    score = LesionScore(n_gt=n_gt, n_pred=n_pred, d0_mm=d0_mm, gt_ids=[int(i) for i in gt_ids], pred_ids=[int(i) for i in pred_ids])
    if gt_inst.shape != pred_inst.shape:
        raise ValueError(f"shape mismatch: pred {pred_inst.shape} vs gt {gt_inst.shape}")
    if n_gt == 0 or n_pred == 0:
        return score
    gi, pi, d = _sparse_dice(gt_inst, n_gt, pred_inst, n_pred)
    keep = d >= dice_threshold
    gi, pi, d = gi[keep], pi[keep], d[keep]
    pairs = _hungarian_sparse(gi, pi, d, n_gt, n_pred)
    if not pairs:
        return score
    dice_of = {(int(a), int(b)): float(v) for a, b, v in zip(gi, pi, d)}
    c_gt = centroids_mm(gt_inst, n_gt, spacing)
    c_pred = centroids_mm(pred_inst, n_pred, spacing)
    for r, c in sorted(pairs):
        dist = float(np.linalg.norm(c_gt[r - 1] - c_pred[c - 1]))
        score.matches.append(LesionMatch(gt_id=int(gt_ids[r - 1]), pred_id=int(pred_ids[c - 1]), dice=dice_of[(r, c)], distance_mm=dist))
    return score


def match_lesions(
    pred,
    gt,
    spacing,
    dice_threshold: float = DICE_MATCH_THRESHOLD,
    d0_mm: float = D0_MM,
    pred_instances: str = "components",
    gt_instances: str = "components",
    connectivity: Optional[int] = None,
) -> LesionScore:
    """Match predicted to GT lesions and score them (LR, LLS; see the module docstring).

    ``pred`` / ``gt``: masks or instance maps (numpy or torch, same shape); ``pred_instances`` /
    ``gt_instances``: ``"components"`` (connected components, ``connectivity`` as in
    :func:`lesion_instances`) or ``"labels"`` (ids as given). ``spacing``: voxel size in mm per
    axis (or an affine). Match ids are component numbers (``"components"``) or the original ids
    (``"labels"``). Matches are those of a Dice-maximising Hungarian assignment restricted to
    pairs with Dice >= ``dice_threshold``.
    """
    gt_inst, gt_ids = _instances(gt, gt_instances, connectivity)
    pred_inst, pred_ids = _instances(pred, pred_instances, connectivity)
    return _match_instances(gt_inst, gt_ids, pred_inst, pred_ids, spacing, dice_threshold, d0_mm)


def lesion_recall(pred, gt, spacing, dice_threshold: float = DICE_MATCH_THRESHOLD, **kw) -> float:
    """LR = N_matched / N_gt of one study (NaN when it has no GT lesion)."""
    return match_lesions(pred, gt, spacing, dice_threshold=dice_threshold, **kw).lesion_recall


def lesion_localisation_score(pred, gt, spacing, d0_mm: float = D0_MM, dice_threshold: float = DICE_MATCH_THRESHOLD, **kw) -> float:
    """LLS = 1/N_gt sum_i Dice_i exp(-d_i/d0) of one study (NaN when it has no GT lesion)."""
    return match_lesions(pred, gt, spacing, dice_threshold=dice_threshold, d0_mm=d0_mm, **kw).lesion_localisation_score


# --------------------------------------------------------------------------- aggregation

def aggregate(scores: Iterable[LesionScore]) -> dict[str, float]:
    """Dataset figures over per-study results.

    ``LR_micro`` / ``LLS_micro``: matches (resp. LLS terms) summed over all studies divided by the
    total number of GT lesions ``n_gt`` (NaN if that is 0). ``LR_macro`` / ``LLS_macro``: mean of
    the per-study LR / LLS over the studies that have GT lesions (NaN if none; studies without GT
    lesions are counted in ``n_studies_without_gt``). Counts: ``n_studies``, ``n_gt``, ``n_pred``,
    ``n_matched``, ``false_positives`` (all studies, including those without GT lesions) and
    ``false_negatives``.
    """
    scores = list(scores)
    n_gt = sum(s.n_gt for s in scores)
    n_matched = sum(s.n_matched for s in scores)
    with_gt = [s for s in scores if s.n_gt]
    return {
        "n_studies": len(scores),
        "n_studies_without_gt": len(scores) - len(with_gt),
        "n_gt": n_gt,
        "n_pred": sum(s.n_pred for s in scores),
        "n_matched": n_matched,
        "false_positives": sum(s.false_positives for s in scores),
        "false_negatives": sum(s.false_negatives for s in scores),
        "LR_micro": n_matched / n_gt if n_gt else math.nan,
        "LLS_micro": sum(s.lls_sum for s in scores) / n_gt if n_gt else math.nan,
        "LR_macro": float(np.mean([s.lesion_recall for s in with_gt])) if with_gt else math.nan,
        "LLS_macro": float(np.mean([s.lesion_localisation_score for s in with_gt])) if with_gt else math.nan,
    }


def aggregate_per_organ(per_study: Iterable[Mapping[str, LesionScore]]) -> dict[str, dict[str, float]]:
    """:func:`aggregate` per organ group over the outputs of :func:`per_organ_lesion_metrics`."""
    by_group: dict[str, list[LesionScore]] = {}
    for study in per_study:
        for g, s in study.items():
            by_group.setdefault(g, []).append(s)
    return {g: aggregate(v) for g, v in sorted(by_group.items())}


# --------------------------------------------------------------------------- per organ

_ORGAN_NAME_OF_ID = {v: k for k, v in ABDOMEN_ORGANS.items()}


def _group_of_organ_id(oid: int, organ_names: Mapping[int, str]) -> str:
    if oid <= 0 or oid not in organ_names:
        return OTHER_GROUP
    return organ_group(organ_names[oid])


def organ_group_at(organ_map: np.ndarray, region: np.ndarray, organ_names: Optional[Mapping[int, str]] = None) -> str:
    """Organ group under most of ``region`` (background ignored; 'other' outside every organ)."""
    ids = np.asarray(organ_map)[region]
    ids = ids[ids > 0].astype(np.int64)
    if ids.size == 0:
        return OTHER_GROUP
    return _group_of_organ_id(int(np.bincount(ids).argmax()), organ_names or _ORGAN_NAME_OF_ID)


def _majority_organ(inst: np.ndarray, n: int, organ_map: np.ndarray) -> np.ndarray:
    """(n,) organ id covering most of each instance 1..n (0 when none; ties -> lowest id)."""
    out = np.zeros(n, np.int64)
    sel = (inst > 0) & (organ_map > 0)
    if n == 0 or not sel.any():
        return out
    org = organ_map[sel].astype(np.int64)
    n_org = int(org.max()) + 1
    codes = inst[sel].astype(np.int64) * n_org + org
    uniq, cnt = np.unique(codes, return_counts=True)
    li, oi = np.divmod(uniq, n_org)
    # sort by (instance, -count, organ id) and keep the first row of each instance
    order = np.lexsort((oi, -cnt, li))
    li, oi = li[order], oi[order]
    first = np.r_[True, li[1:] != li[:-1]]
    out[li[first] - 1] = oi[first]
    return out


def lesion_groups(
    gt_instances,
    organ_map=None,
    gt_organ: Optional[Mapping[int, str]] = None,
    organ_names: Optional[Mapping[int, str]] = None,
) -> dict[int, str]:
    """GT lesion id (as in the instance map) -> organ group.

    ``gt_organ[id]`` (an organ key such as 'kidney_left', e.g. the report's truth) wins when given;
    otherwise the organ covering most of the lesion in ``organ_map`` ('other' when outside every
    organ or when there is no map). ``organ_names`` maps organ-map ids to organ keys
    (default: :data:`lib.anatomy.labels.ABDOMEN_ORGANS`).
    """
    gt_inst, ids = _instances(gt_instances, "labels", None)
    return _lesion_groups(gt_inst, ids, organ_map, gt_organ, organ_names)


def _lesion_groups(gt_inst, ids, organ_map, gt_organ, organ_names) -> dict[int, str]:
    names = organ_names or _ORGAN_NAME_OF_ID
    majority = _majority_organ(gt_inst, ids.size, _to_numpy(organ_map)) if organ_map is not None else np.zeros(ids.size, np.int64)
    out = {}
    for k, i in enumerate(ids):
        name = (gt_organ or {}).get(int(i))
        out[int(i)] = organ_group(name) if name else _group_of_organ_id(int(majority[k]), names)
    return out


def per_organ_lesion_metrics(
    pred,
    gt_instances,
    organ_map,
    spacing,
    gt_organ: Optional[Mapping[int, str]] = None,
    *,
    organ_names: Optional[Mapping[int, str]] = None,
    dice_threshold: float = DICE_MATCH_THRESHOLD,
    d0_mm: float = D0_MM,
    pred_instances: str = "components",
    gt_instances_mode: str = "labels",
    connectivity: Optional[int] = None,
) -> dict[str, LesionScore]:
    """LR / LLS split by organ group (liver / kidney / pancreas, 'other'), as in 000 Table 1.

    ``gt_instances``: GT instance map (its ids kept, ``gt_instances_mode="labels"``; pass
    ``"components"`` for a binary mask). ``organ_map``: organ label map (ids per ``organ_names``),
    or a dict GT lesion id -> organ key used *instead of* a map, or ``None`` with ``gt_organ``.
    ``gt_organ`` (id -> organ key) overrides the map for the lesions it names.

    The matching is done once over the whole study (a prediction can match only one lesion);
    a matched prediction counts in its GT lesion's group; an unmatched prediction counts (as a
    false positive) in the group of the organ under its centroid, 'other' when outside every
    organ or when no organ map is given. Returned: group -> :class:`LesionScore`, for every group
    that has GT lesions or predictions (a group with predictions only has NaN LR/LLS).
    """
    if isinstance(organ_map, Mapping):
        gt_organ = {**organ_map, **(gt_organ or {})}
        organ_map = None
    names = organ_names or _ORGAN_NAME_OF_ID
    organ_arr = _to_numpy(organ_map) if organ_map is not None else None

    gt_inst, gt_ids = _instances(gt_instances, gt_instances_mode, connectivity)
    pred_inst, pred_ids = _instances(pred, pred_instances, connectivity)
    if organ_arr is not None and organ_arr.shape != gt_inst.shape:
        raise ValueError(f"organ map shape {organ_arr.shape} != lesion map shape {gt_inst.shape}")
    score = _match_instances(gt_inst, gt_ids, pred_inst, pred_ids, spacing, dice_threshold, d0_mm)
    groups = _lesion_groups(gt_inst, gt_ids, organ_arr, gt_organ, names)

    out: dict[str, LesionScore] = {}

    def bucket(g: str) -> LesionScore:
        return out.setdefault(g, LesionScore(n_gt=0, n_pred=0, d0_mm=d0_mm))

    for i in gt_ids:
        b = bucket(groups[int(i)])
        b.n_gt += 1
        b.gt_ids.append(int(i))
    for m in score.matches:
        b = bucket(groups[m.gt_id])
        b.matches.append(m)
        b.n_pred += 1
        b.pred_ids.append(m.pred_id)
    unmatched = score.unmatched_pred_ids
    if unmatched:
        index_of = {int(p): k for k, p in enumerate(pred_ids)}
        cents = _centroids_vox(pred_inst, int(pred_ids.size))
        for pid in unmatched:
            g = OTHER_GROUP
            if organ_arr is not None:
                v = np.clip(np.rint(cents[index_of[pid]]).astype(int), 0, np.asarray(organ_arr.shape) - 1)
                g = _group_of_organ_id(int(organ_arr[tuple(v)]), names)
            b = bucket(g)
            b.n_pred += 1
            b.pred_ids.append(pid)
    return dict(sorted(out.items()))


#: The name used by :mod:`lib.metrics.evaluation` (same function).
per_organ_lesion_scores = per_organ_lesion_metrics
