"""``gleve``: every lesion description of the report -> its own mask in the CT (000, GLeVE).

Request: image + report (``params["report"]`` or the datastore's). The anatomy task gives the
organ map (cached per image, so grounding never re-segments a study); GLeVE runs at the task's
target spacing; each lesion's refined probability is taken back to the input grid through the
inverse of the pre-processing before the label map is made, so label ``i + 1`` is the ``i``-th
lesion description, on the radiologist's own grid.

Answer (``params``):

* ``lesions``: one entry per lesion description, in report order: sentence text and character
  span, organ, sub-location, ``label`` (id in the label map) and ``label_name``, 3D box in voxels
  and in mm (RAS world coordinates of the input image), verification score s_i (000 eq. 4),
  candidate entropy (eq. 5), number of candidates, measured vs reported volume (ml) and HU;
* a description that cannot be grounded has ``label: null`` and a ``reason`` (organ absent from
  the image, no response above the adaptive threshold, mask lost on the input grid) - never a guess;
* ``label_names``: "lesion 2 — liver segment VII, 18 mm" -> 2, so Slicer names each segment.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import DivisiblePadd, EnsureTyped
from monailabel.interfaces.tasks.infer_v2 import InferType

from lib.anatomy.labels import ANATOMY_STRUCTURES, ORGAN_DISPLAY
from lib.anatomy.prior import soft_organ_maps
from lib.infers.base import RadgroundInferTask
from lib.networks.gleve.report_graph import build_lesion_graph, organ_prior_channels
from lib.reports.schema import ParsedReport
from lib.transforms.ct import load_ct, resample_and_window
from lib.transforms.anatomy import AnatomyLabeld

logger = logging.getLogger(__name__)

#: An organ counts as present in the image from this volume on (the anatomy model's stray voxels do not).
MIN_ORGAN_ML = 2.0


def lesion_label_name(index: int, unit) -> str:
    """'lesion 2 — liver segment VII, 18 mm' (1-based, as the label id)."""
    organ = ORGAN_DISPLAY.get(unit.organ, unit.organ.replace("_", " "))
    where = " ".join([organ] + list(unit.sub_location))
    size = f", {' x '.join(f'{v:g}' for v in unit.size_mm)} mm" if unit.size_mm else ""
    return f"lesion {index + 1} — {where}{size}"


class GleveInfer(RadgroundInferTask):
    needs_report = True

    def __init__(self, path, network, target_spacing: Sequence[float], anatomy_task: Callable, sigma_mm: float = 4.0, **kw):
        super().__init__(
            path=path,
            network=network,
            type=InferType.SEGMENTATION,
            labels={},
            dimension=3,
            description="GLeVE: one mask per lesion description of the report (graph queries, organ-prior verification, octree refinement)",
            load_strict=True,
            config={"threshold": 0.5},
            **kw,
        )
        self.target_spacing = tuple(float(s) for s in target_spacing)
        self.anatomy_task = anatomy_task
        self.sigma_mm = float(sigma_mm)

    # ------------------------------------------------------------------ pre
    def pre_transforms(self, data=None) -> Sequence[Callable]:
        keys = ["image", "organs"]
        return (
            [AnatomyLabeld(self.anatomy_task, key="organs", task="gleve")]
            + load_ct(keys)
            + resample_and_window(keys, self.target_spacing, label_keys=("organs",), hu_key="hu")
            # the backbones downsample up to 16x; the padding is undone with the rest on the way back
            + [DivisiblePadd(keys=keys + ["hu"], k=16)]
        )

    def inverse_transforms(self, data=None):
        return []  # invert Orientation + Spacing on the per-lesion probabilities

    # ------------------------------------------------------------------ model
    def run_inferer(self, data: dict[str, Any], convert_to_batch=True, device="cuda"):
        network = self._get_network(device, data)
        cfg = network.config
        parsed = data.get("parsed_report")
        parsed = parsed if isinstance(parsed, ParsedReport) else ParsedReport.model_validate(parsed)
        units = parsed.findings
        image, organs, hu = data["image"], data["organs"], data["hu"]
        organ_ids = {n: ANATOMY_STRUCTURES[n] for n in cfg.organ_names}
        maps = torch.from_numpy(soft_organ_maps(organs[0].cpu().numpy(), organ_ids, self.target_spacing, self.sigma_mm))
        graph = build_lesion_graph(units)
        network.eval()
        with torch.no_grad():
            out = network(image.as_tensor()[None].to(device), maps.to(device), graph, hu_image=hu.as_tensor()[0].to(device), spacing=self.target_spacing)
        probs = out.refined_probs().detach().cpu() if units else torch.zeros((0, *image.shape[1:]))
        background = torch.full((1, *image.shape[1:]), float(data.get("threshold", 0.5)))
        pred = torch.cat([background, probs.to(background)], 0)
        data[self.output_label_key] = MetaTensor(pred, meta=dict(image.meta), applied_operations=list(image.applied_operations))
        voxel_ml = float(np.prod(self.target_spacing)) / 1000.0
        organ_present = {n: float((organs == i).sum()) * voxel_ml >= MIN_ORGAN_ML for n, i in organ_ids.items()}
        details = [self._details(i, u, out, organ_present, cfg) for i, u in enumerate(units)]
        if units:  # measured HU of each grounded mask, at the task's spacing (the HU image is kept there)
            lab, hu_t = out.label_map(float(data.get("threshold", 0.5))).cpu(), hu.as_tensor()[0].cpu()
            for rec in details:
                m = lab == rec["index"] + 1
                rec["measured_hu"] = round(float(hu_t[m].mean()), 1) if bool(m.any()) else None
                if not bool(m.any()) and "reason" not in rec:
                    rec["reason"] = "the refined mask has no voxel above the threshold"
        data["gleve_lesions"] = details
        return data

    def _details(self, i: int, unit, out, organ_present: dict[str, bool], cfg) -> dict[str, Any]:
        les = out.lesions[i]
        t = les.target
        rec: dict[str, Any] = {
            "index": i,
            "sentence": unit.text,
            "sentence_index": unit.sentence_index,
            "span": list(unit.span),
            "organ": unit.organ,
            "sub_location": list(unit.sub_location),
            "reported_size_mm": list(unit.size_mm),
            "reported_volume_ml": round(t.volume_ml, 3) if t.has_volume else None,
            "reported_hu": unit.hu,
            "reported_density": unit.density,
            "n_candidates": len(les.candidates),
            "verification_score": None,
            "candidate_entropy": None,
        }
        if les.verification is not None and les.selected is not None:
            rec["verification_score"] = round(float(les.verification.scores[les.selected]), 4)
            rec["candidate_entropy"] = round(float(les.verification.entropy), 4)
        channels = organ_prior_channels(unit.organ, cfg.organ_names)
        if not channels:
            rec["reason"] = f"the anatomy prior has no '{unit.organ}' to search in"
        elif not any(organ_present.get(cfg.organ_names[c], False) for c in channels):
            rec["reason"] = f"the {ORGAN_DISPLAY.get(unit.organ, unit.organ)} was not found in this image"
        elif not les.candidates:
            rec["reason"] = "no response above the adaptive threshold in the reported organ"
        return rec

    # ------------------------------------------------------------------ post
    def post_transforms(self, data=None) -> Sequence[Callable]:
        return [EnsureTyped(keys=self.output_label_key, device="cpu"), LesionLabelsd(self.output_label_key, self.output_json_key)]


class LesionLabelsd:
    """Per-lesion probabilities on the input grid -> label map + the per-lesion JSON of the answer."""

    def __init__(self, label_key: str = "pred", json_key: str = "result"):
        self.label_key, self.json_key = label_key, json_key

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        p = d[self.label_key]
        p = p.as_tensor() if isinstance(p, MetaTensor) else torch.as_tensor(p)
        label = p.argmax(0).numpy().astype(np.int32)  # channel 0 is the threshold: 0 where no lesion beats it
        affine = np.asarray(d.get("source_affine"), dtype=np.float64)
        voxel_ml = float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0
        parsed = d.get("parsed_report")
        units = (parsed if isinstance(parsed, ParsedReport) else ParsedReport.model_validate(parsed)).findings
        lesions, names = [], {}
        for rec in d.get("gleve_lesions", []):
            rec = dict(rec)
            lid = rec["index"] + 1
            idx = np.nonzero(label == lid)
            if "reason" not in rec and not idx[0].size:
                rec["reason"] = "the grounded mask vanished when resampled to the input grid"
            if "reason" in rec or not idx[0].size:
                label[label == lid] = 0
                rec.update(label=None, label_name=None, box_vox=None, box_mm=None, measured_volume_ml=None)
            else:
                lo, hi = [int(a.min()) for a in idx], [int(a.max()) for a in idx]
                corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]) @ affine.T
                name = lesion_label_name(rec["index"], units[rec["index"]])
                names[name] = lid
                rec.update(
                    label=lid,
                    label_name=name,
                    box_vox=[lo, hi],
                    box_mm=[[round(float(v), 2) for v in corners[:, :3].min(0)], [round(float(v), 2) for v in corners[:, :3].max(0)]],
                    measured_volume_ml=round(idx[0].size * voxel_ml, 3),
                )
                rec["reason"] = None
            lesions.append(rec)
        d[self.label_key] = label
        result = dict(d.get(self.json_key) or {})
        result.update(lesions=lesions, result_label_names=names, anatomy=d.get("anatomy"), n_lesion_descriptions=len(lesions))
        d[self.json_key] = result
        return d
