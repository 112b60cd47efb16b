"""``lesion_baseline``: report-blind 3D lesion segmentation, the yardstick for the grounding models.

It ignores the report on purpose: whatever the grounding models gain over it (LR, LLS) is what
reading the report buys.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import Inferer, SlidingWindowInferer
from monai.transforms import Activationsd, AsDiscreted, EnsureTyped, SqueezeDimd
from monailabel.interfaces.tasks.infer_v2 import InferType
from scipy import ndimage

from lib.infers.base import RadgroundInferTask
from lib.transforms.ct import load_ct, resample_and_window


class LesionBaselineInfer(RadgroundInferTask):
    def __init__(self, path, network, target_spacing: Sequence[float], roi_size: Sequence[int], labels=None, **kw):
        super().__init__(
            path=path,
            network=network,
            type=InferType.SEGMENTATION,
            labels=labels or {"lesion": 1},
            dimension=3,
            description="Report-blind 3D lesion segmentation (MONAI UNet/SegResNet baseline)",
            roi_size=tuple(roi_size),
            config={"min_lesion_mm3": 30.0},
            **kw,
        )
        self.target_spacing = tuple(target_spacing)

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return load_ct("image") + resample_and_window("image", self.target_spacing)

    def inverse_transforms(self, data=None):
        return []  # undo Orientation + Spacing on the logits, so argmax happens on the input grid

    def inferer(self, data=None) -> Inferer:
        return SlidingWindowInferer(roi_size=self.roi_size, sw_batch_size=1, overlap=0.25, mode="gaussian")

    def run_inferer(self, data: dict[str, Any], convert_to_batch=True, device="cuda"):
        data = super().run_inferer(data, convert_to_batch=convert_to_batch, device=device)
        # The inverse transforms replay the image's applied operations onto the prediction.
        image, pred = data[self.input_key], data[self.output_label_key]
        pred = pred.as_tensor() if isinstance(pred, MetaTensor) else pred
        data[self.output_label_key] = MetaTensor(pred, meta=dict(image.meta), applied_operations=list(image.applied_operations))
        return data

    def post_transforms(self, data=None) -> Sequence[Callable]:
        return [
            EnsureTyped(keys="pred", device="cpu"),
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys="pred", argmax=True),
            SqueezeDimd(keys="pred", dim=0),
            RemoveSmallLesionsd(),
        ]


class RemoveSmallLesionsd:
    """Drop connected components under ``min_lesion_mm3`` (below the smallest reportable lesion)."""

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        pred = data["pred"]
        arr = (pred.numpy() if torch.is_tensor(pred) else np.asarray(pred)) > 0
        affine = data.get("source_affine")
        voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3]))) if affine is not None else 1.0
        min_vox = max(1, int(round(float(data.get("min_lesion_mm3", 30.0)) / voxel_mm3)))
        comps, n = ndimage.label(arr, structure=np.ones((3, 3, 3)))
        if n:
            sizes = np.bincount(comps.ravel())
            keep = sizes >= min_vox
            keep[0] = False
            arr = keep[comps]
        data["pred"] = arr.astype(np.uint8)
        data.setdefault("result", {})["lesion_components"] = int(ndimage.label(arr, structure=np.ones((3, 3, 3)))[1])
        return data
