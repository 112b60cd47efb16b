"""The anatomy task as a pre-transform: grounding models that need the organ / region prior (GLeVE,
Reg2RG) ask the app's own ``anatomy`` infer task for the study's structure map, so the prior comes
from the same weights and per-image cache as ``/infer/anatomy``."""
from __future__ import annotations

import os
from typing import Any, Callable

from lib.errors import InvalidImageError


class AnatomyLabeld:
    """Run ``anatomy_task`` on the image file and put its structure-map file under ``key``; what
    answered (cache hit or miss, backend, model version) goes under ``anatomy``."""

    def __init__(self, anatomy_task: Callable, key: str = "anatomy_label", task: str = "this task"):
        self.anatomy_task, self.key, self.task = anatomy_task, key, task

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        image = d.get("image")
        if not (isinstance(image, str) and os.path.isfile(image)):
            raise InvalidImageError(f"{self.task} needs the image as a file (datastore id or upload)")
        label_file, result = self.anatomy_task({"image": image, "device": d.get("device", "cpu"), "model": "anatomy"})
        d[self.key] = label_file
        d["anatomy"] = {"cache": result.get("cache"), "backend": result.get("backend"), "model": result.get("model")}
        return d
