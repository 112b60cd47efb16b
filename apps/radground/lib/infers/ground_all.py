"""``ground_all``: every grounding model the server has, on one study + report, side by side.

A radiologist sees where models disagree. The members are the app's own infer tasks, looked up by
name in its infer registry when the app is built (:meth:`GroundAllInfer.bind_infers`): the project's
grounding models by name (:data:`GROUNDING_TASKS`: a model written later, medvolr1 or segdetexplain,
joins as soon as its infer task is registered with trained weights), and any other 3D task that
reads the report (``needs_report``) or names a grounding answer form; ``--conf ground_all_models
a,b`` fixes the list instead. Each member runs exactly as ``/infer/<name>`` runs it (same request: image, report, parsed report, and any other params, e.g. the ``query`` of the
query-grounding models), one after the other on the shared CPU/GPU.

Answer (``params``):

* ``models``: member name -> its result schema (:class:`lib.schema.GroundingResult`), in order;
* ``agreement``: one entry per lesion with each model's finding, pairwise IoU and mean IoU, and the
  reason of each model that found nothing there (:mod:`lib.schema.agreement`);
* ``failed``: member name -> why it gave no answer (no trained weights, an error): the others
  still answer;
* ``label_names`` / the label map: one value per agreement entry that some model found, the union
  of its members' masks (filled boxes for box models), named with the entry id, the models that
  found it and their mean IoU ("L3 — gleve + medgrounder, IoU 0.42"), so Slicer's segment list
  reads as the agreement table.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional, Sequence

import numpy as np
import SimpleITK as sitk
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from lib.errors import InvalidParamsError, RadgroundError
from lib.schema.agreement import ModelAnswer, lesion_agreement
from lib.schema.geometry import geometry_of_label_file
from lib.schema.hook import GROUNDING_KEY, attach_grounding
from lib.schema.models import GroundingResult
from lib.writers.label_writer import result_extension, write_label

logger = logging.getLogger(__name__)

#: answer forms of :mod:`lib.schema.adapters` that ground report text
GROUNDING_FORMATS = ("lesion_grounding", "phrase_grounding", "region_report")
#: the project's grounding models by task name (issues 000-004); any other task joins by its attributes
GROUNDING_TASKS = ("gleve", "medgrounder", "reg2rg", "medvolr1", "segdetexplain")


def is_grounding_task(name: str, task: Any) -> bool:
    """A 3D task that grounds or writes report text: a known grounding model, a task that reads the
    report (``needs_report``), or one that names a grounding answer form. 2D tasks (radiographs,
    ``image_dims = 2``) cannot read the study's CT and are left out."""
    if (getattr(task, "image_dims", None) or getattr(task, "dimension", 3)) != 3:
        return False
    return name in GROUNDING_TASKS or bool(getattr(task, "needs_report", False)) or getattr(task, "grounding_format", None) in GROUNDING_FORMATS


def read_label(path: str) -> np.ndarray:
    """A label file as an array in the input image's order (i, j, k), as the tasks wrote it."""
    return np.transpose(sitk.GetArrayFromImage(sitk.ReadImage(path)), (2, 1, 0))


def agreement_label_map(entries: list[dict], answers: dict[str, ModelAnswer], shape: Sequence[int]) -> tuple[np.ndarray, dict[str, int]]:
    """One value per entry some model found: the union of its members' masks (or filled voxel boxes),
    named after the entry, its models and their mean IoU.

    Entries overlap (a filled box around a mask, two lesions of one sentence); larger regions are
    drawn first so a small lesion stays visible inside a large one, and an entry left with no voxel
    loses its name: Slicer gives the i-th name to the i-th value present.
    """
    regions: list[tuple[int, str, np.ndarray]] = []
    for entry in entries:
        region = np.zeros(tuple(shape), dtype=bool)
        for model, found in entry["models"].items():
            ans = answers[model]
            finding = ans.grounding.finding(found["finding_id"])
            if ans.has_masks:
                region |= ans.label == finding.label
                continue
            for b in finding.boxes:
                lo, hi = b.voxel
                region[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = True
        if region.any():
            iou = f", IoU {entry['mean_iou']:.2f}" if entry["mean_iou"] is not None else ""
            regions.append((len(regions) + 1, f"{entry['id']} — {' + '.join(entry['models'])}{iou}", region))
    label = np.zeros(tuple(shape), dtype=np.uint16)
    for value, _, region in sorted(regions, key=lambda r: -int(r[2].sum())):
        label[region] = value
    present = set(np.unique(label).tolist())
    return label, {name: value for value, name, _ in regions if value in present}


class GroundAllInfer(InferTask):
    needs_report = True
    grounding_format = "segmentation"  # its own schema: the agreement map's segments (each member's is in 'models')

    def __init__(self, members: Optional[Sequence[str]] = None, name: str = "ground_all"):
        super().__init__(
            type=InferType.SEGMENTATION,
            labels={},
            dimension=3,
            description="Every grounding model on one study + report, side by side, with per-lesion agreement (IoU)",
            config={},
        )
        self.name = name
        self.wanted = list(members) if members else None
        self._infers: dict[str, Any] = {}

    # ------------------------------------------------------------------ members
    def bind_infers(self, infers: dict[str, Any]) -> None:
        """The app's infer registry (the same dict the app serves from)."""
        self._infers = infers

    def members(self) -> list[str]:
        """The grounding tasks this server runs (valid: trained weights), in registry order."""
        if self.wanted is not None:
            return [m for m in self.wanted if m in self._infers and m != self.name]
        return [n for n, t in self._infers.items() if t is not self and is_grounding_task(n, t) and t.is_valid()]

    def is_valid(self) -> bool:
        return len(self.members()) >= 1

    def info(self) -> dict[str, Any]:
        return {**super().info(), "members": self.members()}

    # ------------------------------------------------------------------ run
    def __call__(self, request, callbacks=None):
        members = self.members()
        if not members:
            raise InvalidParamsError("ground_all: this server has no grounding model to run")
        answers: dict[str, ModelAnswer] = {}
        results: dict[str, Any] = {}
        failed: dict[str, str] = {}
        label_files = []
        for name in members:
            try:
                label_file, result = self._infers[name](dict(request, model=name, result_extension=".nii.gz"))
            except RadgroundError as e:
                failed[name] = e.message
                continue
            except Exception as e:  # noqa: BLE001 - one model's failure must not hide the others' answers
                logger.exception(f"ground_all: {name} failed")
                failed[name] = f"inference failed ({type(e).__name__}); see the server log"
                continue
            if isinstance(label_file, str):
                label_files.append(label_file)
            if GROUNDING_KEY not in result:  # a task outside RadgroundInferTask: give it the schema here
                attach_grounding(result, label_file, getattr(self._infers[name], "grounding_format", None))
            if not result.get(GROUNDING_KEY):
                failed[name] = f"no result schema ({result.get('grounding_error')})"
                continue
            grounding = GroundingResult.model_validate(result[GROUNDING_KEY])
            answers[name] = ModelAnswer(name, grounding, read_label(label_file) if isinstance(label_file, str) else None)
            results[name] = result[GROUNDING_KEY]
        try:
            return self._combine(request, answers, results, failed, label_files)
        finally:
            for f in label_files:
                if os.path.exists(f):
                    os.remove(f)

    def _combine(self, request, answers, results, failed, label_files):
        if not answers:
            raise InvalidParamsError(f"ground_all: no model could answer: {failed}")
        entries = lesion_agreement(list(answers.values()))
        geometry = next((geometry_of_label_file(f) for f in label_files), None)
        result: dict[str, Any] = {"models": results, "agreement": entries, "failed": failed, "members": list(answers)}
        if geometry is None:
            result["label_names"] = {}
            return None, result
        label, names = agreement_label_map(entries, answers, geometry.shape)
        out = write_label(label, np.asarray(geometry.affine), result_extension(request), str(request.get("result_dtype") or "uint8"))
        result["label_names"] = names
        result["model"] = {"name": request.get("model") or self.name, "file": None, "version": "+".join(f"{n}:{g['model']['version']}" for n, g in results.items())}
        attach_grounding(result, out, self.grounding_format)
        return out, result
