"""TaskConfig for ``lesion_baseline`` (report-blind lesion segmentation)."""
from __future__ import annotations

from typing import Any

from lib.configs.segmentation import CTSegmentationConfig, variants
from lib.infers.lesion_baseline import LesionBaselineInfer


class LesionBaseline(CTSegmentationConfig):
    # 2x2x3 mm on the CPU keeps 5 mm lesions at >= 2 voxels.
    VARIANTS = variants(tiny_spacing=(2.0, 2.0, 3.0))
    infer_cls = LesionBaselineInfer

    def task_labels(self) -> dict[str, int]:
        return {"lesion": 1}

    def train_kwargs(self) -> dict[str, Any]:
        # Supervised Dice+CE on the studies with a final lesion label. Instance labels are binarised:
        # the baseline has no notion of which report sentence a lesion belongs to.
        # Abdominal studies only: a synthetic chest study's final label holds chest findings.
        return {"description": "Train the report-blind lesion segmenter on final lesion labels", "binarize_label": True, "body_parts": ("abdomen",)}
