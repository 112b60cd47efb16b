"""``anatomy``: organ segmentation of the CT, the anatomical prior of the grounding models.

Results are cached per image content and model version (:mod:`lib.anatomy.cache`); the answer says
whether it came from the cache (``params["cache"]``: hit/miss), and the segment names travel in
``label_names`` so Slicer names each organ.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from lib.anatomy.cache import ResultCache
from lib.infers.base import model_version
from lib.infers.segmentation import CTSegmentationInfer
from lib.writers.label_writer import result_extension

logger = logging.getLogger(__name__)


class AnatomyInfer(CTSegmentationInfer):
    def __init__(self, path, network, labels: dict[str, int], target_spacing, roi_size, cache_dir: str, **kw):
        super().__init__(
            path=path,
            network=network,
            labels=labels,
            target_spacing=target_spacing,
            roi_size=roi_size,
            description="Organ segmentation of abdominal CT (anatomical prior for grounding)",
            **kw,
        )
        self.cache = ResultCache(cache_dir)

    def __call__(self, request, callbacks=None):
        image = request.get("image")
        use_cache = isinstance(image, str) and os.path.isfile(image) and not request.get("no_cache")
        if use_cache:
            ext = result_extension({"result_extension": request.get("result_extension"), "source_path": image})
            key = self.cache.key(image, model_version(self.get_path()))
            hit = self.cache.get(key, ext)
            if hit:
                label_file, result = hit
                result["cache"] = "hit"
                logger.info(f"anatomy cache hit for {os.path.basename(image)}")
                return label_file, result
        label_file, result = super().__call__(request, callbacks)
        if use_cache:
            result = {k: v for k, v in result.items() if k != "latencies"}
            self.cache.put(key, ext, label_file, result)
            result["cache"] = "miss"
        return label_file, result
