"""MONAI Label scoring methods over the unlabelled studies; results go to the datastore info.

- ``report_uncertainty`` (:class:`ReportUncertaintyScoring`): how unsure GLeVE is of its grounding
  of the study's report: candidate entropy (000 eq. 5) and test-time-augmentation disagreement
  (:mod:`lib.activelearning.grounding` says why TTA and not MC dropout). It stores
  ``report_inconsistency`` too: the plain pass it needs is all that score needs.
- ``report_inconsistency`` (:class:`ReportInconsistencyScoring`): how far the grounding is from
  what the report says: lesion count, |measured - reported| volume and HU. One plain pass.
- ``model_disagreement`` (:class:`ModelDisagreementScoring`): 1 - Dice between the lesion masks
  of two or more trained lesion models (today ``gleve`` and ``lesion_baseline``; any infer task
  that answers a lesion label map fits).

Scores are recomputed only when the model version, the report or the settings changed (see
:mod:`lib.activelearning.store`), so MONAI Label's automatic re-scoring after each training and
each ``/activelearning`` call costs a hash per study when nothing changed. A study that cannot
be scored (no report, a report without lesion descriptions, another body part, an unreadable
volume) is listed in the answer with its reason and left unscored; it never stops the run.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Mapping, Optional, Sequence

import nibabel as nib
import numpy as np
import torch
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.scoring import ScoringMethod

from lib.activelearning import grounding, signals
from lib.activelearning.store import score_version, stored_score, unlabelled_images, write_scores
from lib.data.studies import body_part_of
from lib.infers.base import model_version
from lib.serving.reports import DEFAULT_MAX_REPORT_CHARS, datastore_report, validated_report

logger = logging.getLogger(__name__)

UNCERTAINTY = "report_uncertainty"
INCONSISTENCY = "report_inconsistency"
DISAGREEMENT = "model_disagreement"


def _device(request: Mapping[str, Any]) -> str:
    dev = str(request.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    return dev if (not dev.startswith("cuda") or torch.cuda.is_available()) else "cpu"


class StudyScoring(ScoringMethod):
    """Shared loop: unlabelled studies with a usable report -> scores -> datastore info.

    Request keys: ``max_samples`` (0 = all), ``device``, ``force`` (recompute even when the stored
    version matches), plus the subclass's own."""

    keys: tuple[str, ...] = ()

    def __init__(self, description: str, body_parts: Optional[Sequence[str]] = ("abdomen",), max_report_chars: int = DEFAULT_MAX_REPORT_CHARS):
        super().__init__(description)
        self.body_parts = tuple(body_parts) if body_parts else None
        self.max_report_chars = int(max_report_chars)

    # subclasses
    def model_version(self) -> Optional[str]:
        raise NotImplementedError

    def settings(self, key: str, request: Mapping[str, Any]) -> str:
        return ""

    def score(self, image: str, parsed, request: Mapping[str, Any]) -> dict[str, tuple[Optional[float], Any]]:
        """{key: (score or None, detail)} for one study."""
        raise NotImplementedError

    def __call__(self, request, datastore: Datastore):
        request = dict(request or {})
        start = time.time()
        version = self.model_version()
        if version is None:
            logger.warning("%s: not run: %s", type(self).__name__, self.not_ready_reason())
            return {"executed": 0, "error": self.not_ready_reason()}
        max_samples = int(request.get("max_samples") or 0)
        force = str(request.get("force", "false")).lower() in ("1", "true", "yes")
        images = unlabelled_images(datastore)
        executed, fresh, failed, scores = 0, 0, {}, {}
        for image_id in images:
            if max_samples and executed >= max_samples:
                break
            path = datastore.get_image_uri(image_id)
            if self.body_parts and body_part_of(os.path.dirname(path), image_id) not in (None, *self.body_parts):
                failed[image_id] = "other_body"
                continue
            try:
                parsed = validated_report(datastore_report(datastore, image_id), self.max_report_chars)
            except Exception as e:  # missing / empty / hostile report: not scoreable, not fatal
                failed[image_id] = f"report: {e}"
                continue
            if not parsed.findings:
                failed[image_id] = "no_findings"
                continue
            info = datastore.get_image_info(image_id) or {}
            expected = {k: score_version(version, parsed.text, self.settings(k, request)) for k in self.keys}
            if not force and all(info.get(f"{k}_version") == v for k, v in expected.items()):
                fresh += 1
                scores[image_id] = {k: stored_score(info, k) for k in self.keys}
                continue
            try:
                result = self.score(path, parsed, request)
            except Exception as e:  # unreadable volume etc.: log, leave unscored
                logger.exception("%s: cannot score %s", type(self).__name__, image_id)
                failed[image_id] = f"{type(e).__name__}: {e}"
                continue
            update: dict[str, Any] = {}
            for k, (value, detail) in result.items():
                update.update({k: value, f"{k}_detail": detail, f"{k}_version": expected.get(k, score_version(version, parsed.text))})
            update[f"{self.keys[0]}_ts"] = int(time.time())
            write_scores(datastore, image_id, update)
            scores[image_id] = {k: v for k, (v, _) in result.items()}
            executed += 1
            logger.info("%s: %s -> %s", type(self).__name__, image_id, scores[image_id])
        summary = {
            "total": len(images),
            "executed": executed,
            "skipped": fresh,
            "not_scored": failed,
            "scores": scores,
            "model_version": version,
            "latency": round(time.time() - start, 3),
        }
        logger.info("%s: %s", type(self).__name__, {k: v for k, v in summary.items() if k != "scores"})
        return summary

    def not_ready_reason(self) -> str:
        return "model has no trained checkpoint"


class _GleveScoring(StudyScoring):
    def __init__(self, infer_task, description: str, tta: int = 0, entropy_weight: float = 0.5, **kw):
        super().__init__(description, **kw)
        self.task = infer_task
        self.tta = int(tta)
        self.entropy_weight = float(entropy_weight)

    def model_version(self) -> Optional[str]:
        path = self.task.get_path()
        return model_version(path) if path else None

    def info(self):
        return {**super().info(), "keys": list(self.keys), "tta": self.tta}

    def _records(self, image: str, parsed, request: Mapping[str, Any], tta: int) -> list[dict[str, Any]]:
        return grounding.ground_study(self.task, image, parsed, device=_device(request), tta=grounding.views(tta), threshold=float(request.get("threshold", 0.5)))

    @staticmethod
    def _inconsistency(records) -> tuple[Optional[float], Any]:
        score, terms = signals.study_inconsistency(records)
        per_lesion = [
            {
                "sentence": r.get("sentence"),
                "grounded": r.get("grounded"),
                "reported_count": r.get("reported_count"),
                "grounded_count": r.get("grounded_count"),
                "reported_volume_ml": r.get("reported_volume_ml"),
                "measured_volume_ml": r.get("measured_volume_ml"),
                "reported_hu_interval": r.get("reported_hu_interval"),
                "measured_hu": r.get("measured_hu"),
                "reason": r.get("reason"),
            }
            for r in records
        ]
        return score, {"terms": terms, "lesions": per_lesion}


class ReportInconsistencyScoring(_GleveScoring):
    """``report_inconsistency``: one plain GLeVE pass per study (see the module docstring)."""

    keys = (INCONSISTENCY,)

    def __init__(self, infer_task, **kw):
        super().__init__(infer_task, "Report-prediction inconsistency: lesion count, volume and HU of GLeVE's grounding vs the report", tta=0, **kw)

    def score(self, image, parsed, request):
        return {INCONSISTENCY: self._inconsistency(self._records(image, parsed, request, 0))}


class ReportUncertaintyScoring(_GleveScoring):
    """``report_uncertainty`` (+ ``report_inconsistency`` from the same plain pass).

    Request keys: ``tta`` (number of augmented views, 0-4; default the constructor's),
    ``entropy_weight`` (weight of the candidate entropy against TTA disagreement)."""

    keys = (UNCERTAINTY, INCONSISTENCY)

    def __init__(self, infer_task, tta: int = 2, entropy_weight: float = 0.5, **kw):
        super().__init__(
            infer_task,
            "Report-grounding uncertainty: GLeVE candidate entropy (eq. 5) + test-time-augmentation disagreement",
            tta=tta,
            entropy_weight=entropy_weight,
            **kw,
        )

    def _req(self, request) -> tuple[int, float]:
        return int(request.get("tta", self.tta)), float(request.get("entropy_weight", self.entropy_weight))

    def settings(self, key, request):
        if key != UNCERTAINTY:
            return ""
        tta, w = self._req(request)
        return f"tta={tta},w={w:g}"

    def score(self, image, parsed, request):
        tta, w = self._req(request)
        records = self._records(image, parsed, request, tta)
        per_lesion = [
            {
                "sentence": r.get("sentence"),
                "grounded": r.get("grounded"),
                "n_candidates": r.get("n_candidates"),
                "candidate_entropy": r.get("candidate_entropy"),
                "normalised_entropy": round(signals.normalised_entropy(r.get("candidate_entropy"), int(r.get("n_candidates") or 0)), 4),
                "verification_score": r.get("verification_score"),
                "tta_dice": r.get("tta_dice"),
                "tta_variance": r.get("tta_variance"),
                "uncertainty": round(signals.lesion_uncertainty(r, w), 4),
            }
            for r in records
        ]
        return {
            UNCERTAINTY: (signals.study_uncertainty(records, w), {"tta": tta, "entropy_weight": w, "lesions": per_lesion}),
            INCONSISTENCY: self._inconsistency(records),
        }


class ModelDisagreementScoring(StudyScoring):
    """``model_disagreement``: 1 - mean pairwise Dice of the binarised lesion label maps that the
    given infer tasks answer for the study (on the input grid, through each task's own ``__call__``).
    Tasks without trained weights are left out; fewer than two -> not run."""

    keys = (DISAGREEMENT,)

    def __init__(self, infer_tasks: Mapping[str, Any], **kw):
        super().__init__(f"Disagreement between lesion models ({', '.join(infer_tasks)}): 1 - Dice of their lesion masks", **kw)
        self.tasks = dict(infer_tasks)

    def _ready(self) -> dict[str, Any]:
        return {n: t for n, t in self.tasks.items() if t.get_path()}

    def model_version(self) -> Optional[str]:
        ready = self._ready()
        if len(ready) < 2:
            return None
        return "+".join(f"{n}={model_version(t.get_path())}" for n, t in sorted(ready.items()))

    def not_ready_reason(self) -> str:
        return f"needs at least two trained lesion models; trained: {sorted(self._ready())}"

    def score(self, image, parsed, request):
        masks, per_model = [], {}
        for name, task in sorted(self._ready().items()):
            label_file, _ = task({"image": image, "model": name, "device": _device(request), "report": parsed.text, "parsed_report": parsed.model_dump()})
            try:
                m = np.asarray(nib.load(label_file).dataobj) > 0
            finally:
                if label_file and os.path.exists(label_file):
                    os.remove(label_file)
            masks.append(m)
            per_model[name] = int(m.sum())
        pair = {f"{a}|{b}": round(signals.dice(masks[i], masks[j]), 4) for i, a in enumerate(sorted(per_model)) for j, b in enumerate(sorted(per_model)) if i < j}
        return {DISAGREEMENT: (signals.mask_disagreement(masks), {"lesion_voxels": per_model, "dice": pair})}
