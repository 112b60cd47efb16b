"""Region masks for Reg2RG training from the anatomy task, cached on disk per study.

004 trains on SAT's masks, the same source that serves. Training on the studies' true region maps
while serving the anatomy network's taught the model to read findings that the served masks leave
out (an effusion the network labels background is not in the pleura crop). This module asks the
app's own ``anatomy`` infer task, the one the ``reg2rg`` infer task uses, for each training
image's structure map, and keeps it in a :class:`lib.anatomy.cache.ResultCache` keyed on the image
file's content and the anatomy result version (backend + checkpoint hash): a changed image or a
retrained anatomy model misses by construction; writes are atomic (temp file + rename), so an
interrupted fill leaves no half entry and a second run resumes it.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterable, Optional

import numpy as np

from lib.anatomy.cache import ResultCache
from lib.anatomy.labels import region_map
from lib.data.region_reports import load_oriented

logger = logging.getLogger(__name__)

EXT = ".nii.gz"
#: entries kept: a training set is thousands of studies, not the serving cache's few hundred
MAX_ENTRIES = 1_000_000


def anatomy_version(task: Any) -> str:
    """The anatomy task's result version (backend + checkpoint hash), part of the cache key."""
    version = getattr(task, "result_version", None)
    if callable(version):
        return str(version())
    raise TypeError(f"anatomy task {type(task).__name__} has no result_version(): cannot key the region-mask cache")


class AnatomyRegionMasks:
    """Image file -> chest region map (REGION_IDS, project orientation) from the anatomy task, cached.

    ``anatomy_task``: the task itself, or a no-argument factory (the anatomy network is built only
    when a study misses the cache)."""

    def __init__(self, anatomy_task: Any, cache_dir: str, device: str = "cpu"):
        self._task = anatomy_task
        self.cache = ResultCache(cache_dir, max_entries=MAX_ENTRIES)
        self.device = device
        self._version: Optional[str] = None

    @property
    def task(self) -> Callable:
        if not hasattr(self._task, "result_version") and callable(self._task):
            self._task = self._task()  # a factory
        return self._task

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = anatomy_version(self.task)
        return self._version

    def key(self, image: str) -> str:
        return self.cache.key(image, self.version)

    def has(self, image: str) -> bool:
        key = self.key(image)
        return all(os.path.exists(os.path.join(self.cache.root, key + e)) for e in (EXT, ".json"))

    def structure_file(self, image: str) -> tuple[str, bool]:
        """(a temp copy of the image's anatomy structure map, on the image's grid; whether it was cached).
        The caller deletes the file."""
        key = self.key(image)
        hit = self.cache.get(key, EXT)
        if hit:
            return hit[0], True
        label_file, result = self.task({"image": image, "device": self.device, "model": "anatomy", "no_cache": True, "result_extension": EXT})
        try:
            info = {"backend": result.get("backend"), "model": result.get("model"), "image": os.path.basename(image)}
            self.cache.put(key, EXT, label_file, info)
        except Exception:
            os.unlink(label_file)
            raise
        return label_file, False

    def regions(self, image: str) -> np.ndarray:
        """The image's region map in the project's orientation (as the infer task builds it)."""
        path, _ = self.structure_file(image)
        try:
            return region_map(load_oriented(path).astype(np.int64)).astype(np.int32)
        finally:
            os.unlink(path)

    def fill(self, images: Iterable[str], budget_s: float = 0.0) -> dict[str, int]:
        """Compute the missing entries of ``images`` (stops after ``budget_s`` seconds when > 0; a later
        call resumes). Counts of ``cached``, ``computed``, ``failed`` and ``left``."""
        start, out = time.time(), {"cached": 0, "computed": 0, "failed": 0, "left": 0}
        images = list(images)
        for n, image in enumerate(images):
            if budget_s and time.time() - start > budget_s:
                out["left"] = len(images) - n
                break
            try:
                if self.has(image):
                    out["cached"] += 1
                    continue
                path, _ = self.structure_file(image)
                os.unlink(path)
                out["computed"] += 1
            except Exception as e:  # one bad study must not end the fill
                logger.warning("Reg2RG region masks: %s: %s", os.path.basename(image), e)
                out["failed"] += 1
        return out
