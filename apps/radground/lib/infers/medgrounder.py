"""``medgrounder``: every sentence of the report -> zero, one or many scored boxes in the CT (003).

Request: image + report (``params["report"]`` or the datastore's; the app's guard parses it).
The sentence split is the parser's; each sentence is grounded on its own (GMPG, §3.1), all of a
report's sentences in one batch over a single image encoding.

Post-processing (§4.0.2): a query survives when its confidence >= ``threshold`` (default: the
one chosen on validation by centre-hit F1 and stored in the checkpoint; the paper's was 0.8),
then redundant boxes merge by weighted box fusion at IoU 0.1 (``wbf``, default on; 3D WBF from
``ensemble-boxes``).

Answer (``params``):

* ``sentences``: one entry per report sentence, in order: ``index``, ``text``, ``span``, the
  parser's ``kind`` (finding / negative / normal / non_diagnostic, for information: the model
  decides groundability itself), ``groundable`` (any box survived), ``boxes`` - each with
  ``confidence``, ``box_vox`` ([lo, hi] inclusive voxel indices of the input image),
  ``box_mm`` ([lo, hi] world mm of the box's outer edges, the image's RAS frame), ``label``
  and ``label_name`` (its segment in the label map);
* ``label_names``: segment name -> label id. The label map draws every box as its outline
  (a one-voxel shell), so nested boxes stay visible in Slicer (where outlines cross, the later
  box is drawn over the earlier);
* ``threshold``, ``wbf``, ``n_boxes``.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from monailabel.interfaces.tasks.infer_v2 import InferType

from lib.errors import InvalidParamsError
from lib.infers.base import RadgroundInferTask
from lib.metrics.boxes import box_voxel_to_world
from lib.networks.medgrounder.postprocess import scored_corner_boxes, select_boxes
from lib.networks.medgrounder.preprocess import CT_WINDOWS, ModelGrid, prepare_image
from lib.reports.schema import ParsedReport
from lib.transforms.ct import load_ct

logger = logging.getLogger(__name__)

MAX_SENTENCE_LABEL_CHARS = 60
SENTENCE_BATCH = 32


class PrepareMedGrounderd:
    """Loaded CT (channel first, with its affine) -> the model's padded cube + its :class:`ModelGrid`."""

    def __init__(self, image_size: int, iso_mm: float, windows=CT_WINDOWS):
        self.image_size, self.iso_mm, self.windows = int(image_size), float(iso_mm), windows

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        img = d["image"]
        x, grid = prepare_image(img, np.asarray(img.affine, float), self.image_size, self.iso_mm, self.windows)
        d["image"], d["model_grid"] = x, grid
        return d


def inclusive_index_box(source_box: np.ndarray, shape: Sequence[int]) -> Optional[list[list[int]]]:
    """Continuous source-voxel corner box (upper exclusive edges) -> [lo, hi] inclusive indices
    of the voxels it covers, clipped to the volume; None when nothing of it is inside."""
    nd = len(shape)
    lo = np.clip(np.floor(source_box[:nd] + 1e-6).astype(int), 0, np.asarray(shape) - 1)
    hi = np.clip(np.ceil(source_box[nd:] - 1e-6).astype(int) - 1, 0, np.asarray(shape) - 1)
    if (source_box[nd:] <= 0).any() or (source_box[:nd] >= np.asarray(shape)).any() or (hi < lo).any():
        return None
    return [lo.tolist(), hi.tolist()]


def draw_box_outline(label: np.ndarray, box: list[list[int]], value: int) -> None:
    """Paint the one-voxel shell of an inclusive index box with ``value`` (in place)."""
    lo, hi = box
    sl = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
    block = np.ones(tuple(b - a + 1 for a, b in zip(lo, hi)), dtype=bool)
    if all(s > 2 for s in block.shape):
        block[tuple(slice(1, -1) for _ in block.shape)] = False
    view = label[sl]
    view[block] = value


def box_label_name(sentence_index: int, j: int, confidence: float, text: str) -> str:
    short = " ".join(text.split())
    if len(short) > MAX_SENTENCE_LABEL_CHARS:
        short = short[: MAX_SENTENCE_LABEL_CHARS - 1] + "…"
    return f"sentence {sentence_index + 1} box {j + 1} ({confidence:.2f}) — {short}"


def stored_threshold(path: str) -> Optional[float]:
    ckpt = torch.load(path, map_location="cpu")
    t = ckpt.get("threshold") if isinstance(ckpt, dict) else None
    return float(t) if t is not None else None


class MedGrounderInfer(RadgroundInferTask):
    needs_report = True
    image_dims = 3  # the app's guard checks the input has this many dimensions

    def __init__(self, path, network, image_size: int, iso_mm: float, threshold: Optional[float] = None, wbf_iou: float = 0.1, **kw):
        kw.setdefault("dimension", self.image_dims)
        kw.setdefault("description", "MedGrounder: each report sentence -> zero, one or many scored boxes (generalised phrase grounding)")
        super().__init__(
            path=path,
            network=network,
            type=InferType.SEGMENTATION,  # Slicer loads the label map of a segmentation result
            labels={},
            load_strict=True,
            config={"wbf": True},
            **kw,
        )
        self.image_size, self.iso_mm = int(image_size), float(iso_mm)
        self.default_threshold = threshold
        self.wbf_iou = float(wbf_iou)

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return load_ct(["image"]) + [PrepareMedGrounderd(self.image_size, self.iso_mm)]

    def inverse_transforms(self, data=None):
        return []  # boxes go back through ModelGrid, not through inverted transforms

    def post_transforms(self, data=None) -> Sequence[Callable]:
        return []

    def checkpoint_threshold(self) -> Optional[float]:
        """The validation-chosen threshold stored with the weights (re-read when the file changes)."""
        return self.checkpoint_object("threshold", stored_threshold, required=False)

    def _threshold(self, data: dict[str, Any], cfg) -> float:
        t = data.get("threshold")
        if t is None:
            t = self.checkpoint_threshold()
        if t is None:
            t = self.default_threshold if self.default_threshold is not None else cfg.threshold
        try:
            t = float(t)
        except (TypeError, ValueError) as e:
            raise InvalidParamsError(f"threshold must be a number in [0, 1], got {data.get('threshold')!r}") from e
        if not 0.0 <= t <= 1.0:
            raise InvalidParamsError(f"threshold must be in [0, 1], got {t}")
        return t

    def run_inferer(self, data: dict[str, Any], convert_to_batch=True, device="cuda"):
        network = self._get_network(device, data)
        cfg = network.config
        parsed = data.get("parsed_report")
        parsed = parsed if isinstance(parsed, ParsedReport) else ParsedReport.model_validate(parsed)
        threshold = self._threshold(data, cfg)
        wbf = str(data.get("wbf", True)).strip().lower() not in ("false", "0", "no", "off")
        grid: ModelGrid = data["model_grid"]
        affine = np.asarray(data["source_affine"], float)
        shape = tuple(int(s) for s in data["source_shape"])
        sentences = list(parsed.sentences)
        network.eval()
        logits, boxes = [], []
        with torch.no_grad():
            image = data["image"][None].to(device)
            for s in range(0, len(sentences), SENTENCE_BATCH):
                chunk = [x.text for x in sentences[s : s + SENTENCE_BATCH]]
                out = network(image, chunk, image_index=[0] * len(chunk))
                logits.append(out["pred_logits"].cpu())
                boxes.append(out["pred_boxes"].cpu())
        logits_t = torch.cat(logits) if logits else torch.zeros(0, cfg.num_queries)
        boxes_t = torch.cat(boxes) if boxes else torch.zeros(0, cfg.num_queries, cfg.box_dim)

        label = np.zeros(shape, dtype=np.int32)
        names: dict[str, int] = {}
        records, next_label = [], 1
        for i, sent in enumerate(sentences):
            corners, scores = scored_corner_boxes(logits_t[i], boxes_t[i])
            kept, conf = select_boxes(corners, scores, threshold, wbf=wbf, wbf_iou=self.wbf_iou)
            out_boxes = []
            for b, c in zip(grid.to_source(kept, affine), conf):
                idx_box = inclusive_index_box(b, shape)
                if idx_box is None:
                    continue
                lo, hi = np.asarray(idx_box[0], float), np.asarray(idx_box[1], float) + 1.0
                mm = box_voxel_to_world(np.concatenate([lo, hi]), affine)
                name = box_label_name(sent.index, len(out_boxes), float(c), sent.text)
                draw_box_outline(label, idx_box, next_label)
                names[name] = next_label
                out_boxes.append({
                    "confidence": round(float(c), 4),
                    "box_vox": idx_box,
                    "box_mm": [[round(float(v), 2) for v in mm[: len(shape)]], [round(float(v), 2) for v in mm[len(shape) :]]],
                    "label": next_label,
                    "label_name": name,
                })
                next_label += 1
            records.append({
                "index": sent.index,
                "text": sent.text,
                "span": list(sent.span),
                "kind": getattr(sent.kind, "value", sent.kind),
                "region": sent.region,
                "groundable": bool(out_boxes),
                "max_confidence": round(float(scores.max()), 4) if len(scores) else None,
                "boxes": out_boxes,
            })
        data[self.output_label_key] = label
        data[self.output_json_key] = {
            "sentences": records,
            "result_label_names": names,
            "threshold": threshold,
            "wbf": wbf,
            "n_boxes": next_label - 1,
            "n_sentences": len(records),
        }
        return data
