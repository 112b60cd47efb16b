"""Sliding-window CT segmentation answered on the input grid: the shared body of every voxel
segmenter here (``lesion_baseline``, ``anatomy``).

The network runs at the task's target spacing in LPS orientation; the logits are taken back through
the inverse of those transforms (MONAI's invertible Orientation/Spacing) before the argmax, so the
label lands on the radiologist's own grid.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from monai.data import MetaTensor
from monai.inferers import Inferer, SlidingWindowInferer
from monai.transforms import Activationsd, AsDiscreted, EnsureTyped, SqueezeDimd
from monailabel.interfaces.tasks.infer_v2 import InferType

from lib.infers.base import RadgroundInferTask
from lib.transforms.ct import load_ct, resample_and_window


class CTSegmentationInfer(RadgroundInferTask):
    def __init__(self, path, network, labels: dict[str, int], target_spacing: Sequence[float], roi_size: Sequence[int], description: str, **kw):
        super().__init__(
            path=path,
            network=network,
            type=InferType.SEGMENTATION,
            labels=labels,
            dimension=3,
            description=description,
            roi_size=tuple(roi_size),
            **kw,
        )
        self.target_spacing = tuple(target_spacing)

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return load_ct("image") + resample_and_window("image", self.target_spacing)

    def inverse_transforms(self, data=None):
        return []  # undo Orientation + Spacing on the logits, so the argmax happens on the input grid

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
        ] + list(self.label_post_transforms(data))

    def label_post_transforms(self, data=None) -> Sequence[Callable]:
        """Clean-up of the label map on the input grid (task-specific)."""
        return []
