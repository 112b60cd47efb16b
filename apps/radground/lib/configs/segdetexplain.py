"""TaskConfig for ``segdetexplain`` (001): segment, detect and explain an object on CT slices, with a closer look.

Sizes: ``tiny`` (CPU) and ``paper`` (GPU), ``--conf segdetexplain_variant``. ``--conf vlm_path DIR``
uses a local Qwen2.5-VL folder as the LVLM and ``--conf sam_path DIR`` a local SAM folder (nothing
is downloaded); without them the model is the one trained here (its tokenizer travels inside the
checkpoint).
"""
from __future__ import annotations

import os
from typing import Any

from monailabel.interfaces.config import TaskConfig

from lib.configs.variants import bundled_checkpoint, select_variant
from lib.networks.segdetexplain import SegDetExplainConfig

VARIANTS: dict[str, dict[str, Any]] = {"tiny": {}, "paper": {}}


def model_config(variant: str, conf: dict[str, str]) -> SegDetExplainConfig:
    if variant == "paper":
        return SegDetExplainConfig.paper(vlm_path=conf.get("vlm_path") or None, sam_path=conf.get("sam_path") or None)
    return SegDetExplainConfig.tiny()


class Segdetexplain(TaskConfig):
    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        conf = conf or {}
        self.variant, _ = select_variant(name, VARIANTS, conf)
        suffix = "" if self.variant == "tiny" else f"_{self.variant}"
        self.path = [bundled_checkpoint(f"{name}{suffix}.pt"), os.path.join(model_dir, f"{name}{suffix}.pt")]
        self.model_cfg = model_config(self.variant, conf)

    def infer(self):
        from lib.infers.segdetexplain import SegDetExplainInfer

        return {self.name: SegDetExplainInfer(path=self.path)}

    def trainer(self):
        from lib.trainers.segdetexplain import SegDetExplainTrain

        return SegDetExplainTrain(model_dir=os.path.join(self.model_dir, self.name), cfg=self.model_cfg, publish_path=self.path[1], load_path=self.path[0])
