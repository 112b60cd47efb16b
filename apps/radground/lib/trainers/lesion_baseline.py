"""Train task for ``lesion_baseline``: supervised Dice+CE on studies with a final lesion label.

Instance labels are binarised: the baseline has no notion of which report sentence a lesion
belongs to.
"""
from __future__ import annotations

from lib.trainers.segmentation import CTSegmentationTrain


class LesionBaselineTrain(CTSegmentationTrain):
    def __init__(self, model_dir: str, network, labels, target_spacing, patch_size, roi_size, **kwargs):
        super().__init__(
            model_dir,
            network,
            labels=labels,
            target_spacing=target_spacing,
            patch_size=patch_size,
            roi_size=roi_size,
            description="Train the report-blind lesion segmenter on final lesion labels",
            binarize_label=True,
            **kwargs,
        )
