"""The anatomy prior other tasks consume: organ masks, smoothed organ maps, organ statistics.

GLeVE conditions its voxel features on Gaussian-smoothed organ masks (000 eq. 2) and compares a
lesion's HU with its organ's (lesion-background contrast, 000 §2.2); Reg2RG crops regions from
region masks (004 §3.2). All of them read the anatomy task's label map through these functions.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from monai.transforms import GaussianSmooth


def organ_masks(label_map: np.ndarray, organs: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Binary mask per organ name (absent organs give an all-False mask)."""
    lab = np.asarray(label_map)
    return {name: lab == oid for name, oid in organs.items()}


def region_masks(label_map: np.ndarray, structures: Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Binary mask per Reg2RG chest region from the anatomy structure map (absent regions all-False)."""
    from lib.anatomy.labels import REGION_IDS, region_map

    regions = region_map(label_map, dict(structures) if structures else None)
    return {name: regions == rid for name, rid in REGION_IDS.items()}


def soft_organ_maps(label_map: np.ndarray, organs: Mapping[str, int], spacing: Sequence[float], sigma_mm: float = 4.0) -> np.ndarray:
    """(K, X, Y, Z) float32 Gaussian-smoothed organ masks M~_k of 000 eq. 2, in the order of ``organs``.

    ``sigma_mm`` is physical, so the smoothing means the same at every voxel spacing.
    """
    lab = np.asarray(label_map)
    masks = np.stack([(lab == oid).astype(np.float32) for oid in organs.values()])
    sigma = [float(sigma_mm) / float(s) for s in spacing]
    return GaussianSmooth(sigma=sigma)(torch.from_numpy(masks)).numpy().clip(0.0, 1.0)


def organ_statistics(image_hu: np.ndarray, label_map: np.ndarray, organs: Mapping[str, int], spacing: Sequence[float]) -> dict[str, dict[str, float]]:
    """Per present organ: volume (ml), mean and standard deviation of HU."""
    img, lab = np.asarray(image_hu, np.float32), np.asarray(label_map)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = {}
    for name, oid in organs.items():
        m = lab == oid
        n = int(m.sum())
        if n:
            vals = img[m]
            out[name] = {"volume_ml": n * voxel_ml, "mean_hu": float(vals.mean()), "std_hu": float(vals.std())}
    return out
