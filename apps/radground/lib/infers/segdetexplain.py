"""``segdetexplain``: image + query (+ optional slice range) -> per-slice masks, boxes and appearance text (001).

Each axial slice of the range goes through the model (§3.4): the VLM answers the question with an
appearance description and, when it sees the object, routing tokens; ``[seg]`` gives the slice's
mask, ``[det]`` its boxes (objectness above the threshold); the closer look (on by default,
``params["closer"]: false`` turns it off) re-reads the ROI of the round-1 mask and pastes the
refined mask back. A slice where the model names no routing token has no mask (the model says the
object is not visible there).

Request ``params``: ``query`` (an organ or "<organ> lesion", e.g. "liver", "left kidney",
"liver lesion"; or a free question), ``task`` (segdet | seg | det), ``slices`` ("a-b", [a, b] or
k; default every slice), ``closer`` (bool), ``max_new_tokens``, ``force_routing`` (bool, default
false: append the task's routing tokens when the model names none, so every slice gets a mask/boxes;
reported per slice as ``forced``).

Answer (``params``): ``query``, ``target``, ``slices`` (per slice: ``slice``, ``text``, ``routing``,
``forced``, ``n_pixels``, ``boxes_2d`` [[i1, j1, i2, j2, score]] on the input grid, the stated and the
measured position, the closer-look ROI), ``boxes_vox`` (one [[lo], [hi]] box per slice box,
inclusive voxels), ``n_voxels``, ``volume_ml``, ``appearance`` (the text of the slice with the largest
mask); the label map holds the object as 1, named ``label_names`` {target: 1}.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

import nibabel as nib
import numpy as np
import torch
from monai.transforms import Orientationd
from monailabel.interfaces.tasks.infer_v2 import InferType

from lib.anatomy.labels import ABDOMEN_ORGANS, ORGAN_DISPLAY
from lib.data.appearance import mask_position, stated_position
from lib.data.region_reports import ORIENTATION
from lib.data.slice_grounding import QUESTIONS, TASK_TOKENS
from lib.errors import InvalidParamsError
from lib.infers.base import RadgroundInferTask
from lib.infers.params import bounded_int, query_text
from lib.transforms.ct import load_ct

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 200
MAX_SLICES = 512
#: Targets the model was trained on, by display name.
KNOWN_TARGETS = sorted({ORGAN_DISPLAY[k] for k in ABDOMEN_ORGANS} | {f"{ORGAN_DISPLAY[k]} lesion" for k in ABDOMEN_ORGANS})


def parse_query(value: Any) -> tuple[str, Optional[str]]:
    """(query text, known target or None). Raises InvalidParamsError on an empty or hostile query."""
    text = query_text(value, MAX_QUERY_CHARS, "left kidney")
    key = text.lower().removeprefix("the ").rstrip(".?!")
    return text, (key if key in KNOWN_TARGETS else None)


def parse_slices(value: Any, n: int) -> list[int]:
    """'a-b' | [a, b] | k | '' -> slice indices (inclusive range) within [0, n)."""
    if value is None or value == "" or value == []:
        lo, hi = 0, n - 1
    else:
        try:
            if isinstance(value, str):
                parts = [p for p in value.replace(":", "-").split("-") if p.strip()]
                nums = [int(p) for p in parts]
            elif isinstance(value, (list, tuple)):
                nums = [int(v) for v in value]
            else:
                nums = [int(value)]
        except (TypeError, ValueError) as e:
            raise InvalidParamsError("params.slices must be 'a-b', [a, b] or one slice index") from e
        if len(nums) not in (1, 2):
            raise InvalidParamsError("params.slices must be 'a-b', [a, b] or one slice index")
        lo, hi = nums[0], nums[-1]
    if not (0 <= lo <= hi < n):
        raise InvalidParamsError(f"params.slices {value!r} is outside the image's {n} axial slices (0..{n - 1})")
    if hi - lo + 1 > MAX_SLICES:
        raise InvalidParamsError(f"at most {MAX_SLICES} slices per request")
    return list(range(lo, hi + 1))


def to_source_grid(label_lps: np.ndarray, source_affine: np.ndarray) -> np.ndarray:
    """A label computed in the LPS-oriented array back to the input file's axis order and flips."""
    src = nib.orientations.io_orientation(np.asarray(source_affine))
    lps = nib.orientations.axcodes2ornt(ORIENTATION["axcodes"], ORIENTATION["labels"])
    return nib.orientations.apply_orientation(label_lps, nib.orientations.ornt_transform(lps, src))


def box_to_source(box_lps: Sequence[int], shape_lps: Sequence[int], source_affine: np.ndarray) -> list[list[int]]:
    """An inclusive voxel box [lo, hi] of the LPS array -> the same box on the input grid."""
    m = np.zeros(shape_lps, bool)
    lo, hi = box_lps
    m[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = True
    idx = np.argwhere(to_source_grid(m, source_affine))
    return [idx.min(0).tolist(), idx.max(0).tolist()]


class SegDetExplainInfer(RadgroundInferTask):
    grounding_format = "slice_query"

    def __init__(self, path, **kw):
        super().__init__(
            path=path,
            network=None,
            type=InferType.SEGMENTATION,
            labels={"object": 1},
            dimension=3,
            description="Seg-det-explain: segment, detect and describe an organ or lesion slice by slice, with a closer look",
            config={"query": "liver", "task": "segdet", "slices": "", "closer": True, "max_new_tokens": 96, "force_routing": False},
            **kw,
        )

    def is_valid(self) -> bool:
        return self.get_path() is not None

    def model(self):
        """The checkpoint's model, reloaded when the file changes (a training published new weights)."""
        from lib.networks.segdetexplain import SegDetExplain

        return self.checkpoint_object("model", lambda path: SegDetExplain.from_checkpoint(torch.load(path, map_location="cpu", weights_only=False)["model"]).eval())

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return [*load_ct(keys="image"), Orientationd(keys="image", **ORIENTATION)]

    def inverse_transforms(self, data=None):
        return None  # the label is put back on the input grid in run_inferer

    def post_transforms(self, data=None) -> Sequence[Callable]:
        return []

    def run_inferer(self, data: dict[str, Any], convert_to_batch=True, device="cuda"):
        from lib.trainers.common import truthy

        query, target = parse_query(data.get("query"))
        task = str(data.get("task") or "segdet")
        if task not in QUESTIONS:
            raise InvalidParamsError(f"params.task must be one of {sorted(QUESTIONS)}")
        max_new = bounded_int(data.get("max_new_tokens"), "max_new_tokens", 8, 1024, 96)
        closer = truthy(data.get("closer", True))
        want = TASK_TOKENS[task] if truthy(data.get("force_routing", False)) else ()
        image = np.asarray(data["image"][0], dtype=np.float32)
        if image.ndim != 3:
            raise InvalidParamsError("segdetexplain needs a 3-D CT volume")
        slices = parse_slices(data.get("slices"), image.shape[2])
        model = self.model()
        question = QUESTIONS[task].format(name=target) if target else query
        label = np.zeros(image.shape, np.uint8)
        records, boxes_vox = [], []
        for k in slices:
            out = model.predict(image[:, :, k], question, target or query, want=want, closer=closer, max_new_tokens=max_new)
            rec = {"slice": int(k), "text": out["text"], "routing": out["emitted"], "forced": out["forced"], "n_pixels": 0, "boxes_2d": []}
            if "prob" in out:
                m = out["prob"] >= model.cfg.mask_threshold
                label[:, :, k][m] = 1
                rec["n_pixels"] = int(m.sum())
                rec["position_stated"] = stated_position(out["text"])
                rec["position_measured"] = mask_position(m, image[:, :, k])
            if out.get("closer"):
                rec["closer_roi"] = out["closer"]["roi"]
            if "boxes" in out:
                keep = out["scores"] >= model.cfg.objectness_threshold
                if not keep.any():  # §3.4 thresholds the scores; keep the best box rather than none
                    keep = out["scores"] == out["scores"].max()
                for b, s in zip(out["boxes"][keep], out["scores"][keep]):
                    i1, j1, i2, j2 = [int(round(v)) for v in b]
                    if i2 <= i1 or j2 <= j1:
                        continue
                    rec["boxes_2d"].append([i1, j1, i2, j2, round(float(s), 4)])
                    boxes_vox.append(([i1, j1, k], [i2 - 1, j2 - 1, k], float(s)))
            records.append(rec)
        affine = np.asarray(data["source_affine"])
        shape = label.shape
        data[self.output_label_key] = to_source_grid(label, affine)
        spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
        name = target or "object"
        peak = max(records, key=lambda r: r["n_pixels"]) if records else None
        data[self.output_json_key] = {
            "query": query,
            "target": target,
            "task": task,
            "closer": closer,
            "slices": records,
            "boxes_vox": [box_to_source((lo, hi), shape, affine) for lo, hi, _ in boxes_vox],
            "box_scores": [s for _, _, s in boxes_vox],
            "n_voxels": int(label.sum()),
            "volume_ml": float(label.sum() * np.prod(spacing) / 1000.0),
            "appearance": peak["text"] if peak and peak["n_pixels"] else None,
            "result_label_names": {name: 1},
            "empty_reason": "the model did not find the object on the slices asked for",
        }
        return data
