"""Shared TaskConfig of the voxel segmenters (``lesion_baseline``, ``anatomy``).

A subclass names its variants, its labels, its infer class and the keyword arguments of its infer
and train tasks; building the network, the checkpoint paths (bundled default first, server-trained
last) and the two tasks is common. Every voxel segmenter trains with the one
:class:`lib.trainers.segmentation.CTSegmentationTrain`: what differs between tasks (the label tag
read from the datastore, binarised instance labels, the description) comes from ``train_kwargs()``.
"""
from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any

from monailabel.interfaces.config import TaskConfig

from lib.configs.variants import bundled_checkpoint, select_variant
from lib.networks.ct_segmenter import build_ct_segmenter
from lib.trainers.segmentation import CTSegmentationTrain


#: CPU network of the ``tiny`` variants. Batch norm, not instance norm: instance statistics of a 64^3
#: training patch and of a larger inference window differ enough to hide every lesion (measured on
#: lesion_baseline: Dice 0.6 -> 0.0 on the same volume).
UNET_TINY = {"arch": "unet", "channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 1, "norm": "batch"}
#: GPU network of the ``paper`` variants: SegResNet (group norm), MONAI's CT recipe.
SEGRESNET_PAPER = {"arch": "segresnet", "init_filters": 32, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)}


def variants(tiny_spacing, paper_spacing=(1.5, 1.5, 2.5)) -> dict[str, dict[str, Any]]:
    """The two size variants of a voxel segmenter, differing in the spacing each task needs."""
    return {
        "tiny": {"network": UNET_TINY, "target_spacing": tuple(tiny_spacing), "patch_size": (64, 64, 32), "roi_size": (96, 96, 48)},
        "paper": {"network": SEGRESNET_PAPER, "target_spacing": tuple(paper_spacing), "patch_size": (128, 128, 64), "roi_size": (192, 192, 96)},
    }


class CTSegmentationConfig(TaskConfig):
    VARIANTS: dict[str, dict[str, Any]] = {}
    infer_cls: type

    @abstractmethod
    def task_labels(self) -> dict[str, int]:
        """Segment name -> label id (0 is background)."""

    def infer_kwargs(self) -> dict[str, Any]:
        """Task-specific keyword arguments of ``infer_cls``."""
        return {}

    def train_kwargs(self) -> dict[str, Any]:
        """Task-specific keyword arguments of CTSegmentationTrain: ``description``, ``label_tag``
        (datastore labels to train on; default ``final``), ``binarize_label`` (instances -> foreground)."""
        return {"description": f"Train the {self.name} segmenter"}

    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        self.variant, self.settings = select_variant(name, self.VARIANTS, conf)
        self.labels = self.task_labels()
        self.network = build_ct_segmenter(out_channels=max(self.labels.values()) + 1, **self.settings["network"])
        suffix = "" if self.variant == "tiny" else f"_{self.variant}"
        # Bundled default first, a checkpoint trained by this server last (MONAI Label picks the last that exists).
        self.path = [bundled_checkpoint(f"{name}{suffix}.pt"), os.path.join(model_dir, f"{name}{suffix}.pt")]

    def _geometry(self) -> dict[str, Any]:
        return {"network": self.network, "target_spacing": self.settings["target_spacing"], "roi_size": self.settings["roi_size"]}

    def infer(self):
        return {self.name: self.infer_cls(path=self.path, labels=self.labels, load_strict=True, **self._geometry(), **self.infer_kwargs())}

    def trainer(self):
        return CTSegmentationTrain(
            model_dir=os.path.join(self.model_dir, self.name),
            labels=self.labels,
            patch_size=self.settings["patch_size"],
            load_path=self.path[0],
            publish_path=self.path[1],
            **self._geometry(),
            **self.train_kwargs(),
        )
