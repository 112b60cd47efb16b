"""Train task for ``lesion_baseline``: supervised Dice+CE on studies with a final lesion label.

Patches are sampled around lesions and background (RandCropByPosNegLabeld) because lesions are a
tiny fraction of an abdominal CT; instance labels are binarised (the baseline has no notion of
which report sentence a lesion belongs to).
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch
from monai.handlers import from_engine
from monai.inferers import SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    RandCropByPosNegLabeld,
    RandScaleIntensityd,
    RandShiftIntensityd,
    SpatialPadd,
)
from monailabel.tasks.train.basic_train import BasicTrainTask, Context

from lib.transforms.ct import load_ct, resample_and_window

logger = logging.getLogger(__name__)


class LesionBaselineTrain(BasicTrainTask):
    def __init__(
        self,
        model_dir: str,
        network: torch.nn.Module,
        target_spacing: Sequence[float],
        patch_size: Sequence[int],
        roi_size: Sequence[int],
        learning_rate: float = 1e-3,
        samples_per_volume: int = 4,
        description: str = "Train the report-blind lesion segmenter on final lesion labels",
        **kwargs,
    ):
        self._network = network
        self.target_spacing = tuple(target_spacing)
        self.patch_size = tuple(patch_size)
        self.roi_size = tuple(roi_size)
        self.learning_rate = learning_rate
        self.samples_per_volume = samples_per_volume
        config = {
            "max_epochs": 50,
            "val_split": 0.2,
            "dataset": ["CacheDataset", "Dataset", "SmartCacheDataset", "PersistentDataset"],
            "dataloader": ["DataLoader", "ThreadDataLoader"],
            "train_batch_size": 2,
            "multi_gpu": False,
            "tracking": ["None", "mlflow"],  # mlflow is not installed by default
        }
        config.update(kwargs.pop("config", None) or {})
        super().__init__(model_dir, description, config=config, amp=torch.cuda.is_available(), labels={"lesion": 1}, tracking=None, **kwargs)

    def network(self, context: Context):
        return self._network

    def optimizer(self, context: Context):
        return torch.optim.AdamW(context.network.parameters(), lr=float(context.request.get("learning_rate", self.learning_rate)), weight_decay=1e-5)

    def loss_function(self, context: Context):
        return DiceCELoss(to_onehot_y=True, softmax=True, squared_pred=True)

    def lr_scheduler_handler(self, context: Context):
        return None  # AdamW at a fixed rate: runs are short and of unknown length (max_epochs per request)

    def train_handlers(self, context: Context):
        # Validation is a full sliding-window pass per volume: long runs may ask for it less often.
        self._val_interval = int(context.request.get("val_interval", self._val_interval))
        return super().train_handlers(context)

    def train_pre_transforms(self, context: Context):
        return load_ct(("image", "label")) + [
            AsDiscreted(keys="label", threshold=0.5),  # lesion instances -> lesion / background
        ] + resample_and_window(("image", "label"), self.target_spacing, label_keys=("label",)) + [
            SpatialPadd(keys=("image", "label"), spatial_size=self.patch_size),
            RandCropByPosNegLabeld(
                keys=("image", "label"), label_key="label", spatial_size=self.patch_size,
                pos=1, neg=1, num_samples=self.samples_per_volume, image_key="image", image_threshold=0.0,
            ),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.05, prob=0.5),
        ]

    def train_post_transforms(self, context: Context):
        return [
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys=("pred", "label"), argmax=(True, False), to_onehot=2),
        ]

    def val_pre_transforms(self, context: Context):
        return load_ct(("image", "label")) + [AsDiscreted(keys="label", threshold=0.5)] + resample_and_window(
            ("image", "label"), self.target_spacing, label_keys=("label",)
        )

    def val_inferer(self, context: Context):
        return SlidingWindowInferer(roi_size=self.roi_size, sw_batch_size=1, overlap=0.25, mode="gaussian")

    def train_key_metric(self, context: Context):
        from monai.handlers import MeanDice

        return {self.TRAIN_METRIC_MEAN_DICE: MeanDice(output_transform=from_engine(["pred", "label"]), include_background=False)}
