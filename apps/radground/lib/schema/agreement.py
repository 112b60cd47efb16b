"""Per-lesion agreement between models' answers to one study + report (``ground_all``).

Every answer is a :class:`GroundingResult` on the same input grid, so findings of different models
compare directly. A *lesion* here is one place a report sentence was grounded:

1. findings are grouped by their report sentence (the parser's sentence index: every model reads
   the same parsed report);
2. within a sentence, the first model (in the order given) with grounded findings opens one lesion
   per finding; each next model's grounded findings are assigned to the open lesions by the
   Hungarian algorithm on IoU (scipy ``linear_sum_assignment``); a pair with IoU 0 is no match, and
   an unassigned finding opens a lesion of its own (a place only that model saw);
3. every lesion lists each model's finding, the IoU of every pair of models that found it, their
   mean, and for finding models that found nothing there, their own reason when they gave one.

IoU is the voxel IoU of the two masks when both models answer with filled masks (lesion
grounding); otherwise (a box model such as MedGrounder, whose label map draws box outlines) the IoU
of the findings' voxel boxes (outer edges), MONAI's ``box_iou``.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from lib.metrics.boxes import iou_matrix
from lib.schema.models import Finding, GroundingResult, TaskType

#: answers whose label map holds the findings' filled masks (compared voxel by voxel)
MASK_TASK_TYPES = (TaskType.LESION_GROUNDING,)
#: answers that ground findings (a report generator or a plain segmenter has none to miss)
FINDING_TASK_TYPES = (TaskType.LESION_GROUNDING, TaskType.PHRASE_GROUNDING)


@dataclass
class ModelAnswer:
    name: str
    grounding: GroundingResult
    label: Optional[np.ndarray] = None  # the answer's label map, array order of the input image

    @property
    def has_masks(self) -> bool:
        return self.label is not None and self.grounding.model.task_type in MASK_TASK_TYPES


def _sentence_key(f: Finding) -> Any:
    if f.sentence is None:
        return ("no sentence", f.id)
    return f.sentence.index if f.sentence.index is not None else tuple(f.sentence.span)


def finding_box(f: Finding) -> Optional[np.ndarray]:
    """Corner box [lo, hi + 1] (outer voxel edges) enclosing all of the finding's voxel boxes."""
    if not f.boxes:
        return None
    lo = np.min([b.voxel[0] for b in f.boxes], axis=0)
    hi = np.max([b.voxel[1] for b in f.boxes], axis=0) + 1
    return np.concatenate([lo, hi]).astype(float)


def finding_iou(a: Finding, ans_a: ModelAnswer, b: Finding, ans_b: ModelAnswer) -> tuple[float, str]:
    """(IoU, "mask" | "box") of two grounded findings of two answers on the same grid."""
    if ans_a.has_masks and ans_b.has_masks:
        ma, mb = ans_a.label == a.label, ans_b.label == b.label
        union = int(np.logical_or(ma, mb).sum())
        return (float(np.logical_and(ma, mb).sum()) / union if union else 0.0), "mask"
    ba, bb = finding_box(a), finding_box(b)
    if ba is None or bb is None:
        return 0.0, "box"
    return float(iou_matrix(ba[None], bb[None])[0, 0]), "box"


def _summary(f: Finding) -> dict[str, Any]:
    box = f.boxes[0].voxel if f.boxes else None
    return {"finding_id": f.id, "label_name": f.label_name, "box_vox": box, "score": f.score, "score_name": f.score_name}


def lesion_agreement(answers: list[ModelAnswer]) -> list[dict[str, Any]]:
    """One entry per lesion (see the module docstring), in report order."""
    by_sentence: dict[Any, dict[str, list[Finding]]] = {}
    sentence_of: dict[Any, Finding] = {}
    for ans in answers:
        for f in ans.grounding.findings:
            key = _sentence_key(f)
            by_sentence.setdefault(key, {}).setdefault(ans.name, []).append(f)
            sentence_of.setdefault(key, f)
    by_name = {a.name: a for a in answers}
    entries: list[dict[str, Any]] = []
    for key in sorted(by_sentence, key=lambda k: (sentence_of[k].sentence.span[0] if sentence_of[k].sentence else 1 << 30, str(k))):
        per_model = by_sentence[key]
        lesions: list[dict[str, Finding]] = []  # model name -> finding; the first finding is the lesion's representative
        for ans in answers:
            found = [f for f in per_model.get(ans.name, []) if f.grounded]
            if not found:
                continue
            if lesions:
                cost = np.zeros((len(lesions), len(found)))
                for i, les in enumerate(lesions):
                    rep_name, rep = next(iter(les.items()))
                    for j, f in enumerate(found):
                        cost[i, j] = finding_iou(rep, by_name[rep_name], f, ans)[0]
                rows, cols = linear_sum_assignment(-cost)
                taken = set()
                for i, j in zip(rows, cols):
                    if cost[i, j] > 0:
                        lesions[i][ans.name] = found[j]
                        taken.add(j)
                lesions += [{ans.name: f} for j, f in enumerate(found) if j not in taken]
            else:
                lesions = [{ans.name: f} for f in found]
        reasons = {
            name: next((f.reason for f in fs if not f.grounded and f.reason), None) for name, fs in per_model.items()
        }
        sentence = sentence_of[key].sentence
        grounders = [a.name for a in answers if a.grounding.findings or a.grounding.model.task_type in FINDING_TASK_TYPES]
        for les in lesions or [{}]:
            pairs = []
            for (na, fa), (nb, fb) in combinations(les.items(), 2):
                iou, measure = finding_iou(fa, by_name[na], fb, by_name[nb])
                pairs.append({"models": [na, nb], "iou": round(iou, 4), "measure": measure})
            missing = {n: reasons.get(n) or "no finding for this sentence" for n in grounders if n not in les}
            entries.append(
                {
                    "id": f"L{len(entries) + 1}",
                    "sentence": sentence.model_dump() if sentence is not None else None,
                    "models": {n: _summary(f) for n, f in les.items()},
                    "missing": missing,
                    "iou": pairs,
                    "mean_iou": round(float(np.mean([p["iou"] for p in pairs])), 4) if pairs else None,
                    "n_models": len(les),
                }
            )
    return entries
