"""TaskConfig for ``anatomy`` (organ segmentation; the prior of GLeVE, Reg2RG and MedGrounder)."""
from __future__ import annotations

import os
from typing import Any

from monailabel.interfaces.config import TaskConfig

from lib.anatomy.labels import organ_label_names
from lib.configs.variants import bundled_checkpoint, select_variant
from lib.infers.anatomy import AnatomyInfer
from lib.networks.ct_segmenter import build_ct_segmenter
from lib.trainers.anatomy import AnatomyTrain

VARIANTS: dict[str, dict[str, Any]] = {
    # CPU: organs are large, 3x3x4 mm is enough and keeps a whole abdomen in a few windows.
    "tiny": {
        "network": {"arch": "unet", "channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 1, "norm": "batch"},
        "target_spacing": (3.0, 3.0, 4.0),
        "patch_size": (64, 64, 32),
        "roi_size": (96, 96, 48),
    },
    "paper": {
        "network": {"arch": "segresnet", "init_filters": 32, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)},
        "target_spacing": (1.5, 1.5, 2.5),
        "patch_size": (128, 128, 64),
        "roi_size": (192, 192, 96),
    },
}


class Anatomy(TaskConfig):
    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        self.variant, self.settings = select_variant(name, VARIANTS, conf)
        self.labels = organ_label_names()
        self.network = build_ct_segmenter(out_channels=max(self.labels.values()) + 1, **self.settings["network"])
        suffix = "" if self.variant == "tiny" else f"_{self.variant}"
        self.path = [bundled_checkpoint(f"{name}{suffix}.pt"), os.path.join(model_dir, f"{name}{suffix}.pt")]
        self.cache_dir = conf.get("anatomy_cache_dir") or os.path.join(model_dir, "cache", name)

    def infer(self):
        return {
            self.name: AnatomyInfer(
                path=self.path,
                network=self.network,
                labels=self.labels,
                target_spacing=self.settings["target_spacing"],
                roi_size=self.settings["roi_size"],
                cache_dir=self.cache_dir,
                load_strict=True,
            )
        }

    def trainer(self):
        return AnatomyTrain(
            model_dir=os.path.join(self.model_dir, self.name),
            network=self.network,
            labels=self.labels,
            target_spacing=self.settings["target_spacing"],
            patch_size=self.settings["patch_size"],
            roi_size=self.settings["roi_size"],
            load_path=self.path[0],
            publish_path=self.path[1],
        )
