"""TaskConfig for ``anatomy`` (organ segmentation; the prior of GLeVE, Reg2RG and MedGrounder)."""
from __future__ import annotations

import os
from typing import Any
from lib.anatomy.labels import organ_label_names
from lib.configs.segmentation import CTSegmentationConfig, variants
from lib.infers.anatomy import AnatomyInfer
from lib.trainers.anatomy import AnatomyTrain


class Anatomy(CTSegmentationConfig):
    # Organs are large: 3x3x4 mm on the CPU keeps a whole abdomen in a few windows.
    VARIANTS = variants(tiny_spacing=(3.0, 3.0, 4.0))
    infer_cls = AnatomyInfer
    train_cls = AnatomyTrain

    def task_labels(self) -> dict[str, int]:
        return organ_label_names()

    def infer_kwargs(self) -> dict[str, Any]:
        return {"cache_dir": self.conf.get("anatomy_cache_dir") or os.path.join(self.model_dir, "cache", self.name)}
