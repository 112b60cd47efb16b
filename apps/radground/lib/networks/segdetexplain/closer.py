"""The closer look (001 §3.2, §3.4): ROI from a mask, crop + resize to the canonical size, paste back.

Training takes the ROI from the ground-truth mask (§3.2), inference from the round-1 prediction
(§3.4). The ROI is the mask's box grown by a margin on every side and made square (so the zoom is
isotropic), at least ``min_frac`` of the image, clipped to it. Connected components smaller than
``keep_frac`` of the largest are left out of the box: a few stray pixels of a round-1 mask would
otherwise stretch the ROI over the whole slice and undo the zoom. All in pixel coordinates of the
slice, upper corner exclusive (``lib.metrics.boxes`` convention).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


def main_components(mask: np.ndarray, keep_frac: float = 0.1) -> np.ndarray:
    """``mask > 0`` without the 8-connected components smaller than ``keep_frac`` x the largest."""
    from scipy import ndimage

    lab, n = ndimage.label(np.asarray(mask) > 0, structure=np.ones((3, 3), bool))
    if n <= 1:
        return lab > 0
    sizes = np.bincount(lab.ravel())[1:]
    keep = np.nonzero(sizes >= keep_frac * sizes.max())[0] + 1
    return np.isin(lab, keep)


def roi_from_mask(mask: np.ndarray, margin: float = 0.25, min_frac: float = 0.2, keep_frac: float = 0.1) -> Optional[tuple[int, int, int, int]]:
    """(i1, j1, i2, j2) square ROI around the main components of ``mask > 0`` (None when empty)."""
    idx = np.argwhere(main_components(mask, keep_frac))
    if idx.size == 0:
        return None
    n, m = mask.shape
    lo, hi = idx.min(0).astype(float), idx.max(0).astype(float) + 1
    side = max(float((hi - lo).max()) * (1 + 2 * margin), min_frac * max(n, m), 2.0)
    side = min(side, float(min(n, m)))
    c = (lo + hi) / 2
    i1 = int(round(min(max(c[0] - side / 2, 0), n - side)))
    j1 = int(round(min(max(c[1] - side / 2, 0), m - side)))
    s = int(round(side))
    return i1, j1, min(i1 + s, n), min(j1 + s, m)


def crop_resize(x: torch.Tensor, roi: tuple[int, int, int, int], size: int, mode: str = "bilinear") -> torch.Tensor:
    """Crop (..., H, W) to the ROI and resize to size x size."""
    i1, j1, i2, j2 = roi
    crop = x[..., i1:i2, j1:j2].float()
    shape = crop.shape
    flat = crop.reshape(-1, 1, *shape[-2:])
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(flat, size=(size, size), mode=mode, **kw).reshape(*shape[:-2], size, size)


def paste(full: torch.Tensor, crop: torch.Tensor, roi: tuple[int, int, int, int]) -> torch.Tensor:
    """``full`` (H, W) with the ROI replaced by ``crop`` (s, s) resized back to the ROI's size."""
    i1, j1, i2, j2 = roi
    out = full.clone()
    out[i1:i2, j1:j2] = F.interpolate(crop[None, None].float(), size=(i2 - i1, j2 - j1), mode="bilinear", align_corners=False)[0, 0]
    return out
