"""``anatomy``: organ segmentation of the CT, the anatomical prior of the grounding models.

Two backends answer it (``--conf anatomy_backend``, resolved by :mod:`lib.configs.anatomy`): the
bundled organ network (default), or TotalSegmentator mapped onto the project's structure ids
(:mod:`lib.anatomy.totalseg`), written on the input grid by the same writer. A requested but
unavailable TotalSegmentator falls back to the network with one warning.

Results are cached per image content, backend and model version (:mod:`lib.anatomy.cache`), so the
two backends' results never mix; the answer says whether it came from the cache
(``params["cache"]``: hit/miss) and which backend made it (``params["backend"]``), and the segment
names travel in ``label_names`` so Slicer names each organ.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Optional

from lib.anatomy.cache import ResultCache
from lib.anatomy.labels import ORGAN_DISPLAY
from lib.anatomy.totalseg import TotalSegmentatorPrior, prior_result_info, resolve_backend, totalseg_label_names
from lib.errors import InvalidImageError
from lib.infers.base import model_version
from lib.infers.segmentation import CTSegmentationInfer
from lib.writers.label_writer import result_extension

logger = logging.getLogger(__name__)


class AnatomyInfer(CTSegmentationInfer):
    def __init__(
        self,
        path,
        network,
        labels: dict[str, int],
        target_spacing,
        roi_size,
        cache_dir: str,
        backend: str = "network",
        totalseg: Optional[dict[str, Any]] = None,
        **kw,
    ):
        totalseg = dict(totalseg or {})
        self.backend = resolve_backend(backend, totalseg.get("weights_dir"), fast=totalseg.get("fast", True))
        self.prior = TotalSegmentatorPrior(**totalseg) if self.backend == "totalsegmentator" else None
        super().__init__(
            path=path,
            network=network,
            labels=totalseg_label_names() if self.prior else labels,
            target_spacing=target_spacing,
            roi_size=roi_size,
            description=(
                "Anatomy of the CT by TotalSegmentator, mapped to radground's structures (anatomical prior for grounding)"
                if self.prior
                else "Organ segmentation of abdominal CT (anatomical prior for grounding)"
            ),
            **kw,
        )
        self.cache = ResultCache(cache_dir)

    def is_valid(self) -> bool:
        """TotalSegmentator needs no checkpoint of ours; the network does."""
        return self.prior is not None or super().is_valid()

    def result_version(self) -> str:
        """Backend + model version: part of the cache key, so backends and model updates never share entries."""
        version = self.prior.version if self.prior else model_version(self.get_path())
        return f"{self.backend}:{version}"

    def __call__(self, request, callbacks=None):
        image = request.get("image")
        use_cache = isinstance(image, str) and os.path.isfile(image) and not request.get("no_cache")
        if use_cache:
            ext = result_extension({"result_extension": request.get("result_extension"), "source_path": image})
            key = self.cache.key(image, self.result_version())
            hit = self.cache.get(key, ext)
            if hit:
                label_file, result = hit
                result["cache"] = "hit"
                logger.info(f"anatomy cache hit for {os.path.basename(image)} ({self.backend})")
                return label_file, result
        if self.prior is not None:
            label_file, result = self._segment_with_prior(request)
        else:
            label_file, result = super().__call__(request, callbacks)
        result["backend"] = self.backend
        if use_cache:
            result = {k: v for k, v in result.items() if k != "latencies"}
            self.cache.put(key, ext, label_file, result)
            result["cache"] = "miss"
        return label_file, result

    def _segment_with_prior(self, request) -> tuple[str, dict[str, Any]]:
        """TotalSegmentator's map, as structure ids, written on the input grid by the task's writer."""
        image = request.get("image")
        if not (isinstance(image, str) and os.path.isfile(image)):
            raise InvalidImageError("the TotalSegmentator anatomy backend needs an image file")
        t0 = time.time()
        label, structures, affine = self.prior.segment(image, return_affine=True)
        result = {
            "label_names": {ORGAN_DISPLAY[k]: v for k, v in structures.items()},
            **prior_result_info(),
            "model": {"name": request.get("model"), "file": None, "version": self.prior.version},
        }
        data = {
            self.output_label_key: label,
            "source_affine": affine,
            "source_shape": tuple(label.shape),
            "source_path": image,
            "result_extension": request.get("result_extension"),
            "result_dtype": request.get("result_dtype"),
            self.output_json_key: result,
        }
        label_file, result = self.writer(data)
        result["latencies"] = {"total": round(time.time() - t0, 2)}
        return label_file, result
