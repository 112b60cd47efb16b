"""Plumbing every radground infer task shares (composition over copy across the five models).

- an image that fails to load or pre-process is the request's fault: a clear 422, not a 500;
- results are written on the input grid by :class:`lib.writers.label_writer.LabelWriter`;
- a task may name its segments per result (``result["label_names"]``), which MONAI Label's
  BasicInferTask would otherwise overwrite with the task's static labels;
- every result says which model file and version produced it;
- every result also carries the shared, versioned schema'd form under ``result["grounding"]``
  (:mod:`lib.schema`), beside the task's own keys.
"""
from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Callable

from monailabel.tasks.infer.basic_infer import BasicInferTask

from lib.errors import InvalidImageError, ModelNotReadyError, RadgroundError
from lib.schema.hook import attach_grounding
from lib.writers.label_writer import LabelWriter

logger = logging.getLogger(__name__)


def model_version(path: str | None) -> str:
    """Short content hash of the checkpoint: changes whenever a training publishes new weights."""
    if not path or not os.path.exists(path):
        return "untrained"
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


class RadgroundInferTask(BasicInferTask):
    """BasicInferTask with radground's error mapping, writer and per-result label names."""

    #: answer form for :mod:`lib.schema.adapters` (None: recognised from the answer's keys)
    grounding_format = None

    def is_valid(self) -> bool:
        """A task is offered only with trained weights: random weights would be a stub behind a real name."""
        return self.get_path() is not None

    def _not_ready(self) -> ModelNotReadyError:
        return ModelNotReadyError(f"no trained checkpoint at {[os.path.basename(p) for p in self.path]}; train the task first")

    def _get_network(self, device, data):
        if self.get_path() is None:
            raise self._not_ready()
        return super()._get_network(device, data)

    def checkpoint_object(self, name: str, build: Callable[[str], Any], required: bool = True) -> Any:
        """What ``build(path)`` makes of the current checkpoint file, kept until the file changes (a
        training published new weights), for tasks whose model is not one network MONAI Label loads.
        No checkpoint: ModelNotReadyError, or None when not ``required``."""
        path = self.get_path()
        if not path:
            if required:
                raise self._not_ready()
            return None
        cache = self.__dict__.setdefault("_checkpoint_objects", {})
        stamp = (path, os.path.getmtime(path))
        hit = cache.get(name)
        if hit is None or hit[0] != stamp:
            hit = (stamp, build(path))
            cache[name] = hit
        return hit[1]

    def run_pre_transforms(self, data: dict[str, Any], transforms):
        try:
            return super().run_pre_transforms(data, transforms)
        except RadgroundError:
            raise
        except Exception as e:
            logger.exception("pre-processing failed")
            raise InvalidImageError(f"image could not be loaded or pre-processed ({type(e).__name__})") from e

    def writer(self, data: dict[str, Any], extension=None, dtype=None):
        return LabelWriter(label_key=self.output_label_key, image_key=self.input_key, json_key=self.output_json_key)(data)

    def __call__(self, request, callbacks=None):
        label_file, result = super().__call__(request, callbacks)
        names = result.pop("result_label_names", None)
        if names is not None:
            result["label_names"] = names
        path = self.get_path()
        result["model"] = {"name": request.get("model"), "file": os.path.basename(path) if path else None, "version": model_version(path)}
        attach_grounding(result, label_file, self.grounding_format)
        return label_file, result
