"""``medvolr1``: image + free-form query -> key slice + 2D boxes + reasoning -> 3D mask (002).

Request: ``params["query"]`` (e.g. "the organ that stores bile", "the kidney that contains the
cyst"); optional ``max_new_tokens`` (1..512) and ``fallback_samples`` (0..16, default 4: when
the greedy answer is malformed, that many seeded samples at T = 0.5 are drawn and the most confident
well-formed one answers; 0 = greedy only). The policy reads the volume as a uniformly sampled
slice sequence, answers ``<think>..</think><answer>{"slice": k, "bbox_2d_list": [...]}</answer>``,
and the propagator lifts the key slice's boxes to a 3D mask, written on the input grid (label 1).

Answer (``params``): ``query``; ``key_slice`` (``k`` as answered, 1-based in the sequence) and
``key_slice_z`` (that slice's index along the input's third axis); ``boxes_2d`` (the answer's
[x1, y1, x2, y2] pixels of the S x S slice) and ``boxes_vox`` (each as [lo, hi] inclusive voxel
indices of the input on the key slice); ``think``; ``response`` (the raw text); ``decoding`` (``greedy``, or ``sampled: ...`` naming the
greedy answer's defect); ``confidence``
(exp of the mean token log-probability of the response: rewards-free, from the policy alone);
``n_voxels``, ``volume_ml``; ``label_names``; ``propagator`` (``name``: ``medsam2`` or
``slice_propagator``, and the ``reason``: why MedSAM2 was or was not used). When no answer parses strictly it is a 422
(:class:`PolicyFormatError`) naming what was wrong, with no label written.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np
from monailabel.interfaces.tasks.infer_v2 import InferType

from lib.infers.base import RadgroundInferTask
from lib.infers.params import bounded_int, query_text
from lib.networks.medvolr1.answer import require
from lib.networks.medvolr1.medsam2 import MEDSAM2, SLICE_PROPAGATOR, MedSAM2Propagator, PropagatorChoice, choose_propagator
from lib.networks.medvolr1.pipeline import ground
from lib.networks.medvolr1.propagator import propagate
from lib.networks.medvolr1.volume import mask_to_source, to_sequence
from lib.transforms.ct import load_ct

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 300
MAX_LABEL_CHARS = 60
#: a malformed greedy answer -> this many seeded samples at T = 0.5; the most confident well-formed one answers
DEFAULT_FALLBACK_SAMPLES = 4


def validated_query(value: Any) -> str:
    return query_text(value, MAX_QUERY_CHARS, "the organ that stores bile")


def validated_max_tokens(value: Any, default: int = 96) -> int:
    return bounded_int(value, "max_new_tokens", 1, 512, default)


def source_boxes(boxes_2d, seq, z: int) -> list[list[list[int]]]:
    """Sequence-pixel boxes on the key slice -> [lo, hi] inclusive voxel boxes of the input."""
    nx, ny, _ = seq.source_shape
    sx, sy = nx / seq.size, ny / seq.size
    out = []
    for x1, y1, x2, y2 in boxes_2d:
        lo = [int(np.clip(np.floor(x1 * sx), 0, nx - 1)), int(np.clip(np.floor(y1 * sy), 0, ny - 1)), z]
        hi = [int(np.clip(np.ceil(x2 * sx) - 1, lo[0], nx - 1)), int(np.clip(np.ceil(y2 * sy) - 1, lo[1], ny - 1)), z]
        out.append([lo, hi])
    return out


def label_name(query: str) -> str:
    return query if len(query) <= MAX_LABEL_CHARS else query[: MAX_LABEL_CHARS - 1] + "…"


class MedVolR1Infer(RadgroundInferTask):
    grounding_format = "query_grounding"

    def __init__(self, path, propagator: PropagatorChoice | None = None, **kw):
        self.propagator_choice = propagator or choose_propagator({})
        self._medsam2: MedSAM2Propagator | str | None = None  # the built propagator, or why it failed
        super().__init__(
            path=path,
            network=None,
            type=InferType.SEGMENTATION,
            labels={},
            dimension=3,
            description="MedVol-R1: a free-form query -> key slice + 2D boxes (with reasoning) -> 3D mask by propagation",
            config={"query": "", "max_new_tokens": 96, "fallback_samples": DEFAULT_FALLBACK_SAMPLES},
            **kw,
        )

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return load_ct(["image"])

    def inverse_transforms(self, data=None):
        return []

    def post_transforms(self, data=None) -> Sequence[Callable]:
        return []

    def system(self):
        """(policy, propagator, checkpoint) of the current file; reloaded when it changes."""
        from lib.networks.medvolr1.checkpoint import load_system_file

        return self.checkpoint_object("system", load_system_file)

    def medsam2(self) -> MedSAM2Propagator | str:
        """The MedSAM2 propagator, built once; or the reason it could not be built."""
        if self._medsam2 is None:
            try:
                prop = MedSAM2Propagator(self.propagator_choice.settings)
                prop.predictor  # noqa: B018  (build now, so a bad checkpoint shows here)
                self._medsam2 = prop
            except Exception as e:
                logger.exception("MedSAM2 could not be built")
                self._medsam2 = f"MedSAM2 could not be built ({type(e).__name__}: {e}); using the project's slice propagator"
        return self._medsam2

    def lift_for(self, volume: np.ndarray, propagator) -> tuple[Any, dict[str, str]]:
        """(lift for :func:`ground` or None, the ``propagator`` answer). A MedSAM2 failure on a request
        falls back to the slice propagator for that request, and the answer says so."""
        used = self.propagator_choice.to_json()
        if self.propagator_choice.name != MEDSAM2:
            return None, used
        prop = self.medsam2()
        if isinstance(prop, str):
            return None, {"name": SLICE_PROPAGATOR, "reason": prop}

        def lift(seq, key, boxes):
            try:
                return prop.lift(seq, volume, key, boxes)
            except Exception as e:
                logger.exception("MedSAM2 propagation failed")
                used.update(name=SLICE_PROPAGATOR, reason=f"MedSAM2 failed on this request ({type(e).__name__}: {e}); using the project's slice propagator")
                m = propagate(propagator, seq.image, key, boxes)
                return m, mask_to_source(m, seq)

        return lift, used

    def run_inferer(self, data: dict[str, Any], convert_to_batch=True, device="cuda"):
        query = validated_query(data.get("query"))
        max_new = validated_max_tokens(data.get("max_new_tokens"))
        fallback = bounded_int(data.get("fallback_samples"), "fallback_samples", 0, 16, DEFAULT_FALLBACK_SAMPLES)
        policy, propagator, ckpt = self.system()
        volume = np.asarray(data["image"])[0]
        affine = np.asarray(data["source_affine"], float)
        seq = to_sequence(volume, policy.n_slices, policy.size)
        lift, used = self.lift_for(volume, propagator)
        g = ground(policy, propagator, seq, query, True, max_new, lift=lift, fallback_samples=fallback)
        parsed = require(g.parsed)  # malformed -> 422, nothing written
        mask = g.source_mask
        z = int(seq.z_index[parsed.slice_index])
        vox_ml = float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0
        name = label_name(query)
        data[self.output_label_key] = mask.astype(np.uint8)
        data[self.output_json_key] = {
            "query": query,
            "key_slice": parsed.slice,
            "key_slice_z": z,
            "n_slices": seq.n_slices,
            "slice_size": seq.size,
            "boxes_2d": [list(b) for b in parsed.boxes],
            "boxes_vox": source_boxes(parsed.boxes, seq, z),
            "think": parsed.think,
            "response": g.text,
            "decoding": "greedy" if g.greedy_failure is None else f"sampled: the greedy answer was malformed ({g.greedy_failure.reason})",
            "confidence": round(float(g.confidence), 4),
            "n_voxels": int(mask.sum()),
            "volume_ml": round(float(mask.sum()) * vox_ml, 3),
            "stage": ckpt.get("stage"),
            "propagator": used,
            "result_label_names": {name: 1},
            "empty_reason": "the propagated mask is empty",
        }
        return data
