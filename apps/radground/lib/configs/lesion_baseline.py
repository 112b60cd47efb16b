"""TaskConfig for ``lesion_baseline`` (report-blind lesion segmentation)."""
from __future__ import annotations

import logging
import os
from typing import Any

from monailabel.interfaces.config import TaskConfig

from lib.configs.variants import bundled_checkpoint, select_variant
from lib.infers.lesion_baseline import LesionBaselineInfer
from lib.networks.ct_segmenter import build_ct_segmenter
from lib.trainers.lesion_baseline import LesionBaselineTrain

logger = logging.getLogger(__name__)

VARIANTS: dict[str, dict[str, Any]] = {
    # CPU: trains in minutes on 2 cores; 2x2x3 mm keeps 5 mm lesions at >= 2 voxels. Batch norm, not
    # instance norm: instance statistics of a 64^3 training patch and of a larger inference window
    # differ enough to hide every lesion (measured: Dice 0.6 -> 0.0 on the same volume).
    "tiny": {
        "network": {"arch": "unet", "channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 1, "norm": "batch"},
        "target_spacing": (2.0, 2.0, 3.0),
        "patch_size": (64, 64, 32),
        "roi_size": (96, 96, 48),
    },
    # GPU: SegResNet at the synthetic engine's native spacing.
    "paper": {
        "network": {"arch": "segresnet", "init_filters": 32, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)},  # group norm
        "target_spacing": (1.5, 1.5, 2.5),
        "patch_size": (128, 128, 64),
        "roi_size": (192, 192, 96),
    },
}


class LesionBaseline(TaskConfig):
    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        self.variant, self.settings = select_variant(name, VARIANTS, conf)
        self.labels = {"lesion": 1}
        self.network = build_ct_segmenter(**self.settings["network"])
        suffix = "" if self.variant == "tiny" else f"_{self.variant}"
        # Bundled default first, a checkpoint trained by this server last (MONAI Label picks the last that exists).
        self.path = [bundled_checkpoint(f"{name}{suffix}.pt"), os.path.join(model_dir, f"{name}{suffix}.pt")]

    def infer(self):
        return {
            self.name: LesionBaselineInfer(
                path=self.path,
                network=self.network,
                target_spacing=self.settings["target_spacing"],
                roi_size=self.settings["roi_size"],
                labels=self.labels,
                load_strict=True,
            )
        }

    def trainer(self):
        output_dir = os.path.join(self.model_dir, self.name)
        return LesionBaselineTrain(
            model_dir=output_dir,
            network=self.network,
            target_spacing=self.settings["target_spacing"],
            patch_size=self.settings["patch_size"],
            roi_size=self.settings["roi_size"],
            load_path=self.path[0],
            publish_path=self.path[1],
        )
