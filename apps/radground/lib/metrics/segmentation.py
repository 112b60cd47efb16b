"""Voxel-level segmentation metrics (Dice, HD95) on binary 3D masks, via ``monai.metrics``.

Edge cases are fixed here once for every table the project prints:
- both masks empty: Dice 1.0, HD95 0.0 (nothing to find, nothing found);
- exactly one empty: Dice 0.0, HD95 = the image diagonal in mm (the worst distance the volume
  allows; MONAI would give inf/NaN, which breaks means).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance


def _as_bool(mask) -> np.ndarray:
    a = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    return a.astype(bool)


def _onehot_batch(mask: np.ndarray) -> torch.Tensor:
    """(X, Y, Z) bool -> (1, 2, X, Y, Z) one-hot, MONAI's metric layout."""
    m = torch.from_numpy(mask.astype(np.float32))
    return torch.stack([1 - m, m])[None]


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    return float(np.linalg.norm(np.asarray(shape, float) * np.asarray(spacing, float)))


def dice(pred, gt) -> float:
    """Dice of two binary masks (1.0 when both are empty)."""
    p, g = _as_bool(pred), _as_bool(gt)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch {p.shape} vs {g.shape}")
    if not p.any() and not g.any():
        return 1.0
    return float(compute_dice(_onehot_batch(p), _onehot_batch(g), include_background=False, ignore_empty=False)[0, 0])


def hd95(pred, gt, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (see module docstring for empty masks)."""
    p, g = _as_bool(pred), _as_bool(gt)
    if p.shape != g.shape:
        raise ValueError(f"shape mismatch {p.shape} vs {g.shape}")
    if not p.any() and not g.any():
        return 0.0
    if not p.any() or not g.any():
        return image_diagonal_mm(p.shape, spacing)
    d = compute_hausdorff_distance(
        _onehot_batch(p), _onehot_batch(g), include_background=False, percentile=95, spacing=list(map(float, spacing))
    )
    return float(d[0, 0])
