"""``lesion_baseline``: report-blind 3D lesion segmentation, the yardstick for the grounding models.

It ignores the report on purpose: whatever the grounding models gain over it (LR, LLS) is what
reading the report buys.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

from lib.infers.segmentation import CTSegmentationInfer


class LesionBaselineInfer(CTSegmentationInfer):
    def __init__(self, path, network, target_spacing: Sequence[float], roi_size: Sequence[int], labels=None, **kw):
        super().__init__(
            path=path,
            network=network,
            labels=labels or {"lesion": 1},
            target_spacing=target_spacing,
            roi_size=roi_size,
            description="Report-blind 3D lesion segmentation (MONAI UNet/SegResNet baseline)",
            config={"min_lesion_mm3": 30.0},
            **kw,
        )

    def label_post_transforms(self, data=None) -> Sequence[Callable]:
        return [RemoveSmallLesionsd()]


class RemoveSmallLesionsd:
    """Drop connected components under ``min_lesion_mm3`` (below the smallest reportable lesion)."""

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        pred = data["pred"]
        arr = (pred.numpy() if torch.is_tensor(pred) else np.asarray(pred)) > 0
        affine = data.get("source_affine")
        voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3]))) if affine is not None else 1.0
        min_vox = max(1, int(round(float(data.get("min_lesion_mm3", 30.0)) / voxel_mm3)))
        comps, n = ndimage.label(arr, structure=np.ones((3, 3, 3)))
        kept = 0
        if n:
            sizes = np.bincount(comps.ravel())
            keep = sizes >= min_vox
            keep[0] = False
            arr = keep[comps]
            kept = int(keep.sum())
        data["pred"] = arr.astype(np.uint8)
        data.setdefault("result", {})["lesion_components"] = kept
        return data
