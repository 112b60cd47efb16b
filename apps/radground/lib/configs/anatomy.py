"""TaskConfig for ``anatomy`` (organ segmentation; the prior of GLeVE, Reg2RG and MedGrounder).

``--conf anatomy_backend network|totalsegmentator`` (default ``network``) picks what answers the
infer task: the bundled organ network, or TotalSegmentator mapped onto the project's structures
(:mod:`lib.anatomy.totalseg`; ``--conf totalseg_weights_dir DIR``, ``totalseg_fast true|false``,
``totalseg_device cpu|gpu``). TotalSegmentator is used only when its package and weights are
already installed; otherwise one warning is logged and the network answers. Training always
trains the network (on the datastore's ``organs`` label maps).
"""
from __future__ import annotations

import os
from typing import Any

from lib.anatomy.labels import anatomy_label_names
from lib.anatomy.totalseg import resolve_backend
from lib.configs.segmentation import CTSegmentationConfig, variants
from lib.infers.anatomy import AnatomyInfer


#: One anatomy infer task per (model_dir, anatomy settings) in this process: the ``anatomy`` task and
#: every grounding model that needs the organ prior (GLeVE, MedGrounder, Reg2RG) share it, so one
#: network sits in memory and one cache answers them all.
_SHARED_INFER: dict[tuple, Any] = {}
_SHARED_KEYS = ("anatomy_variant", "variant", "anatomy_backend", "anatomy_cache_dir", "totalseg_weights_dir", "totalseg_fast", "totalseg_device")


def _share_key(model_dir: str, conf: dict[str, str] | None) -> tuple:
    conf = conf or {}
    return (os.path.abspath(model_dir),) + tuple(str(conf.get(k)) for k in _SHARED_KEYS)


def anatomy_infer_task(model_dir: str, conf: dict[str, str] | None):
    """The process's anatomy infer task for these settings (built on first use)."""
    key = _share_key(model_dir, conf)
    if key not in _SHARED_INFER:
        cfg = Anatomy()
        cfg.init("anatomy", model_dir, dict(conf or {}), None)
        cfg.infer()  # registers itself
    return _SHARED_INFER[key]


class Anatomy(CTSegmentationConfig):
    # Organs are large: 3x3x4 mm on the CPU keeps a whole abdomen in a few windows.
    VARIANTS = variants(tiny_spacing=(3.0, 3.0, 4.0))
    infer_cls = AnatomyInfer

    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        conf = conf or {}
        self.totalseg = {
            "weights_dir": conf.get("totalseg_weights_dir") or None,
            "fast": str(conf.get("totalseg_fast", "true")).strip().lower() not in ("false", "0", "no"),
            "device": conf.get("totalseg_device") or "cpu",
        }
        # Resolved once here: an unavailable TotalSegmentator is one warning at start-up, then the network.
        self.backend = resolve_backend(conf.get("anatomy_backend"), self.totalseg["weights_dir"], fast=self.totalseg["fast"])

    def task_labels(self) -> dict[str, int]:
        return anatomy_label_names()

    def infer(self):
        key = _share_key(self.model_dir, self.conf)
        if key not in _SHARED_INFER:
            _SHARED_INFER[key] = super().infer()[self.name]
        return {self.name: _SHARED_INFER[key]}

    def infer_kwargs(self) -> dict[str, Any]:
        return {
            "cache_dir": (self.conf or {}).get("anatomy_cache_dir") or os.path.join(self.model_dir, "cache", self.name),
            "backend": self.backend,
            "totalseg": self.totalseg,
        }

    def train_kwargs(self) -> dict[str, Any]:
        return {"description": "Train the organ segmenter on the datastore's 'organs' label maps", "label_tag": "organs"}
