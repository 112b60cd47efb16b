"""Train task for ``anatomy``: multi-class organ segmentation on the datastore's ``organs`` labels."""
from __future__ import annotations

from lib.trainers.segmentation import CTSegmentationTrain


class AnatomyTrain(CTSegmentationTrain):
    def __init__(self, model_dir: str, network, labels: dict[str, int], target_spacing, patch_size, roi_size, **kwargs):
        super().__init__(
            model_dir,
            network,
            labels=labels,
            target_spacing=target_spacing,
            patch_size=patch_size,
            roi_size=roi_size,
            description="Train the organ segmenter on the datastore's 'organs' label maps",
            label_tag="organs",
            **kwargs,
        )
