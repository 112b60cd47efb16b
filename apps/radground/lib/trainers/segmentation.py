"""Supervised CT segmentation training (Dice + CE) shared by ``lesion_baseline`` and ``anatomy``.

Patches at the task's spacing: lesions are a tiny fraction of an abdominal CT, so binary tasks
sample lesion and background patches 1:1 (RandCropByPosNegLabeld); multi-class tasks sample by
class (RandCropByLabelClassesd) so small organs are seen as often as the liver. Validation is a
full sliding-window pass with the inference window.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import torch
from monai.handlers import MeanDice, from_engine
from monai.inferers import SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    ClassesToIndicesd,
    FgBgToIndicesd,
    RandCropByLabelClassesd,
    RandCropByPosNegLabeld,
    RandScaleIntensityd,
    RandShiftIntensityd,
    SpatialPadd,
)
from monailabel.interfaces.datastore import DefaultLabelTag
from monailabel.tasks.train.basic_train import BasicTrainTask, Context

from lib.data.studies import body_part_of
from lib.transforms.ct import load_ct, resample_and_window

logger = logging.getLogger(__name__)

KEYS = ("image", "label")


class CTSegmentationTrain(BasicTrainTask):
    def __init__(
        self,
        model_dir: str,
        network: torch.nn.Module,
        labels: dict[str, int],
        target_spacing: Sequence[float],
        patch_size: Sequence[int],
        roi_size: Sequence[int],
        description: str,
        label_tag: str = DefaultLabelTag.FINAL.value,
        binarize_label: bool = False,
        learning_rate: float = 1e-3,
        samples_per_volume: int = 4,
        body_parts: Optional[Sequence[str]] = None,
        **kwargs,
    ):
        self._network = network
        self.label_names = dict(labels)
        self.num_classes = (1 if binarize_label else max(labels.values())) + 1
        self.target_spacing = tuple(target_spacing)
        self.patch_size = tuple(patch_size)
        self.roi_size = tuple(roi_size)
        self.label_tag = label_tag
        self.binarize_label = binarize_label
        self.learning_rate = learning_rate
        self.samples_per_volume = samples_per_volume
        self.body_parts = tuple(body_parts) if body_parts else None
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
        super().__init__(model_dir, description, config=config, amp=torch.cuda.is_available(), labels=self.label_names, tracking=None, **kwargs)

    # --------------------------------------------------------------- data
    def pre_process(self, request, datastore):
        """Image/label pairs of the task's label tag (``final`` = the radiologists' corrected labels).

        With ``body_parts`` set, studies whose truth names another body part are left out (a chest
        study's ``final`` label holds chest findings, not abdominal lesions); studies without truth
        (real data) are kept.
        """
        pairs = []
        for image_id in datastore.list_images():  # (get_labeled_images ignores its label_tag in 0.8.5)
            label_id = datastore.get_label_by_image_id(image_id, self.label_tag)
            if not label_id:
                continue
            image = datastore.get_image_uri(image_id)
            if self.body_parts and body_part_of(os.path.dirname(image), image_id) not in (None, *self.body_parts):
                continue
            pairs.append({"image": image, "label": datastore.get_label_uri(label_id, self.label_tag)})
        return pairs

    def _label_prep(self) -> list:
        return [AsDiscreted(keys="label", threshold=0.5)] if self.binarize_label else []  # instances -> foreground

    def _crop(self) -> list:
        """Sampling indices are computed once per volume (before the cache), the crops per step."""
        if self.binarize_label:
            return [
                FgBgToIndicesd(keys="label", image_key="image", image_threshold=0.0),
                RandCropByPosNegLabeld(keys=KEYS, label_key="label", spatial_size=self.patch_size, pos=1, neg=1,
                                       num_samples=self.samples_per_volume, fg_indices_key="label_fg_indices",
                                       bg_indices_key="label_bg_indices"),
            ]
        return [
            ClassesToIndicesd(keys="label", num_classes=self.num_classes),
            RandCropByLabelClassesd(keys=KEYS, label_key="label", spatial_size=self.patch_size, num_classes=self.num_classes,
                                    num_samples=self.samples_per_volume, indices_key="label_cls_indices"),
        ]

    def train_pre_transforms(self, context: Context):
        return load_ct(KEYS) + self._label_prep() + resample_and_window(KEYS, self.target_spacing, label_keys=("label",)) + [
            SpatialPadd(keys=KEYS, spatial_size=self.patch_size),
            *self._crop(),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.05, prob=0.5),
        ]

    def val_pre_transforms(self, context: Context):
        return load_ct(KEYS) + self._label_prep() + resample_and_window(KEYS, self.target_spacing, label_keys=("label",))

    def train_post_transforms(self, context: Context):
        return [
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys=("pred", "label"), argmax=(True, False), to_onehot=self.num_classes),
        ]

    # --------------------------------------------------------------- model
    def network(self, context: Context):
        return self._network

    def optimizer(self, context: Context):
        lr = float(context.request.get("learning_rate", self.learning_rate))
        return torch.optim.AdamW(context.network.parameters(), lr=lr, weight_decay=1e-5)

    def loss_function(self, context: Context):
        return DiceCELoss(to_onehot_y=True, softmax=True, squared_pred=True)

    def lr_scheduler_handler(self, context: Context):
        return None  # AdamW at a fixed rate: runs are short and of unknown length (max_epochs per request)

    def train_handlers(self, context: Context):
        # Validation is a full sliding-window pass per volume: long runs may ask for it less often.
        self._val_interval = int(context.request.get("val_interval", self._val_interval))
        return super().train_handlers(context)

    def val_inferer(self, context: Context):
        return SlidingWindowInferer(roi_size=self.roi_size, sw_batch_size=1, overlap=0.25, mode="gaussian")

    def train_key_metric(self, context: Context):
        return {self.TRAIN_METRIC_MEAN_DICE: MeanDice(output_transform=from_engine(["pred", "label"]), include_background=False)}
