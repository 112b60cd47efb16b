"""TaskConfig for ``lesion_baseline`` (report-blind lesion segmentation)."""
from __future__ import annotations

from lib.configs.segmentation import CTSegmentationConfig, variants
from lib.infers.lesion_baseline import LesionBaselineInfer
from lib.trainers.lesion_baseline import LesionBaselineTrain


class LesionBaseline(CTSegmentationConfig):
    # 2x2x3 mm on the CPU keeps 5 mm lesions at >= 2 voxels.
    VARIANTS = variants(tiny_spacing=(2.0, 2.0, 3.0))
    infer_cls = LesionBaselineInfer
    train_cls = LesionBaselineTrain

    def task_labels(self) -> dict[str, int]:
        return {"lesion": 1}
