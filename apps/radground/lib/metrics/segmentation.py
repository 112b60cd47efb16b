"""Voxel-level segmentation metrics (Dice, HD95) on binary 2D/3D masks, via ``monai.metrics``.

The arithmetic is MONAI's (:func:`monai.metrics.compute_dice`,
:func:`monai.metrics.compute_hausdorff_distance` with ``percentile=95`` and the voxel ``spacing``);
this module only fixes the input handling and the edge cases, once, for every table the project
prints.

Inputs: numpy arrays or torch tensors, any dtype; a voxel is foreground when ``> 0``. Leading
singleton dimensions beyond the spatial ones (e.g. a ``(1, X, Y, Z)`` channel-first MONAI tensor)
are squeezed. ``spacing`` is the voxel size in mm along each array axis (same order as the
array), so HD95 is in mm.

Edge cases (conventions, not accidents):

====================  ==========  =============================================================
case                  Dice        HD95
====================  ==========  =============================================================
both masks empty      1.0         0.0 -- nothing to find and nothing found is a perfect answer;
                                  both values are finite and *counted* in means.
exactly one empty     0.0         the image diagonal in mm, ``||shape * spacing||`` (the worst
                                  distance the volume allows). MONAI returns inf/NaN here, which
                                  would silently break (or silently drop out of) a table mean;
                                  the diagonal keeps the miss in the mean as a large penalty.
                                  ``one_empty="nan"`` / ``"inf"`` give MONAI's behaviour instead
                                  for callers that prefer to exclude and count such cases.
====================  ==========  =============================================================
"""
from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance

Spacing = Union[float, Sequence[float]]

__all__ = ["dice", "hd95", "segmentation_metrics", "image_diagonal_mm", "as_binary_mask"]


def as_binary_mask(mask) -> np.ndarray:
    """``mask > 0`` as a numpy bool array; leading singleton axes beyond 3 dims are squeezed."""
    a = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim not in (2, 3):
        raise ValueError(f"expected a 2D or 3D mask (optionally with leading singleton axes), got shape {a.shape}")
    return a > 0


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    p, g = as_binary_mask(pred), as_binary_mask(gt)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch: pred {p.shape} vs gt {g.shape}")
    return p, g


def _spacing(spacing: Spacing, ndim: int) -> list[float]:
    s = np.atleast_1d(np.asarray(spacing, float))
    if s.size == 1:
        s = np.repeat(s, ndim)
    if s.size != ndim:
        raise ValueError(f"spacing {tuple(s)} does not match a {ndim}D mask")
    if np.any(s <= 0):
        raise ValueError(f"spacing must be positive, got {tuple(s)}")
    return [float(v) for v in s]


def _onehot_batch(mask: np.ndarray) -> torch.Tensor:
    """(X, Y[, Z]) bool -> (1, 2, X, Y[, Z]) one-hot, MONAI's metric layout."""
    m = torch.from_numpy(mask.astype(np.float32))
    return torch.stack([1 - m, m])[None]


def image_diagonal_mm(shape: Sequence[int], spacing: Spacing) -> float:
    """Length in mm of the image diagonal, ``||shape * spacing||`` (HD95's value when one mask is empty)."""
    return float(np.linalg.norm(np.asarray(shape, float) * np.asarray(_spacing(spacing, len(shape)))))


def dice(pred, gt) -> float:
    """Dice ``2|P∩G| / (|P|+|G|)`` of two binary masks; 1.0 when both are empty, 0.0 when one is."""
    p, g = _pair(pred, gt)
    if not p.any() and not g.any():
        return 1.0
    return float(compute_dice(_onehot_batch(p), _onehot_batch(g), include_background=False, ignore_empty=False)[0, 0])


def hd95(pred, gt, spacing: Spacing = 1.0, one_empty: str = "diagonal") -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm between the two masks' surfaces.

    Both empty -> 0.0; exactly one empty -> the image diagonal in mm (``one_empty="diagonal"``,
    the default), or ``nan`` / ``inf`` when asked. See the module docstring.
    """
    p, g = _pair(pred, gt)
    sp = _spacing(spacing, p.ndim)
    if not p.any() and not g.any():
        return 0.0
    if not p.any() or not g.any():
        if one_empty == "diagonal":
            return image_diagonal_mm(p.shape, sp)
        if one_empty == "nan":
            return math.nan
        if one_empty == "inf":
            return math.inf
        raise ValueError(f"one_empty must be 'diagonal', 'nan' or 'inf', not {one_empty!r}")
    d = compute_hausdorff_distance(_onehot_batch(p), _onehot_batch(g), include_background=False, percentile=95, spacing=sp)
    return float(d[0, 0])


def segmentation_metrics(pred, gt, spacing: Spacing = 1.0, one_empty: str = "diagonal") -> dict[str, float]:
    """``{"dice": ..., "hd95": ...}`` for one pair of masks (same conventions as :func:`dice`, :func:`hd95`)."""
    return {"dice": dice(pred, gt), "hd95": hd95(pred, gt, spacing, one_empty=one_empty)}
