"""Each task's own answer JSON -> :class:`GroundingResult`.

The tasks keep their keys (``lesions``, ``sentences``, ``regions``, ``label_names``) because
clients read them; an adapter maps one answer form onto the shared schema. The form is named by
the task (``grounding_format`` on the infer task) or recognised by its keys, so a task written
elsewhere (reg2rg, medvolr1, ...) gets the schema as soon as its answer matches a known form; a new
form is one function registered in :data:`ADAPTERS`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from lib.schema.geometry import box_from_voxels
from lib.schema.models import (
    Box,
    Finding,
    GroundingResult,
    ImageGeometry,
    MeasuredAttributes,
    ModelInfo,
    RegionReport,
    ReportedAttributes,
    Segment,
    SentenceRef,
    TaskType,
)

Adapter = Callable[[dict[str, Any], Optional[ImageGeometry]], GroundingResult]


def detect_format(result: dict[str, Any]) -> str:
    """The answer form of a task's JSON, by its keys."""
    if isinstance(result.get("lesions"), list):
        return "lesion_grounding"
    if isinstance(result.get("sentences"), list) and all(isinstance(s, dict) and "boxes" in s for s in result["sentences"]):
        return "phrase_grounding"
    if isinstance(result.get("regions"), list):
        return "region_report"
    return "segmentation"


def to_grounding(result: dict[str, Any], geometry: Optional[ImageGeometry] = None, fmt: Optional[str] = None) -> GroundingResult:
    """The schema'd form of ``result`` (a task's answer, ``label_names`` and ``model`` included)."""
    fmt = fmt or detect_format(result)
    if fmt not in ADAPTERS:
        raise ValueError(f"no grounding adapter for answer form {fmt!r}; known: {sorted(ADAPTERS)}")
    return ADAPTERS[fmt](result, geometry)


# ---------------------------------------------------------------------- shared pieces
def _model(result: dict[str, Any], task_type: TaskType) -> ModelInfo:
    m = result.get("model") or {}
    return ModelInfo(name=m.get("name"), version=str(m.get("version") or "untrained"), file=m.get("file"), task_type=task_type)


def _segments(result: dict[str, Any], findings: list[Finding]) -> list[Segment]:
    """The label map's named values (``label_names``), each with the findings drawn in it."""
    names = {str(k): int(v) for k, v in (result.get("label_names") or {}).items() if int(v) >= 1}
    return [
        Segment(label=v, name=k, finding_ids=[f.id for f in findings if f.grounded and f.label == v])
        for k, v in sorted(names.items(), key=lambda kv: kv[1])
    ]


def _box(voxel, mm, geometry: Optional[ImageGeometry], score: Optional[float] = None) -> Box:
    """Recompute mm from the voxels on the input grid when known (one convention for every model:
    outer voxel edges); otherwise keep the task's own mm box."""
    if geometry is not None:
        return box_from_voxels(voxel, np.asarray(geometry.affine), score=score, system=geometry.coordinate_system)
    return Box(voxel=voxel, mm=mm, score=score)


def _round(v: Any) -> Optional[float]:
    return None if v is None else float(v)


# ---------------------------------------------------------------------- forms
def lesion_grounding(result: dict[str, Any], geometry: Optional[ImageGeometry]) -> GroundingResult:
    """``lesions``: one entry per lesion description (gleve)."""
    findings = []
    for n, rec in enumerate(result.get("lesions") or []):
        grounded = rec.get("label") is not None
        extra = {k: rec[k] for k in ("candidate_entropy", "n_candidates") if rec.get(k) is not None}
        findings.append(
            Finding(
                id=f"f{n + 1}",
                sentence=SentenceRef(text=rec["sentence"], span=list(rec["span"]), index=rec.get("sentence_index")),
                kind="finding",
                organ=rec.get("organ"),
                sub_location=list(rec.get("sub_location") or []),
                grounded=grounded,
                label=rec.get("label"),
                label_name=rec.get("label_name"),
                boxes=[_box(rec["box_vox"], rec.get("box_mm"), geometry, rec.get("verification_score"))] if grounded and rec.get("box_vox") else [],
                score=_round(rec.get("verification_score")),
                score_name="verification_score",
                reason=rec.get("reason") if not grounded else None,
                reported=ReportedAttributes(
                    size_mm=list(rec.get("reported_size_mm") or []),
                    volume_ml=_round(rec.get("reported_volume_ml")),
                    hu=_round(rec.get("reported_hu")),
                    density=rec.get("reported_density"),
                ),
                measured=MeasuredAttributes(volume_ml=_round(rec.get("measured_volume_ml")), mean_hu=_round(rec.get("measured_hu"))),
                extra=extra,
            )
        )
    return GroundingResult(model=_model(result, TaskType.LESION_GROUNDING), image=geometry, findings=findings, segments=_segments(result, findings))


def phrase_grounding(result: dict[str, Any], geometry: Optional[ImageGeometry]) -> GroundingResult:
    """``sentences``: every sentence with zero, one or many scored boxes (medgrounder).

    Each box is a finding (it has its own label); a *finding* sentence with no box is kept as an
    ungrounded finding, so a reader sees what the model left out. Other sentences with no box
    (negations, normal statements) are not findings.
    """
    findings: list[Finding] = []
    threshold = result.get("threshold")
    for rec in result.get("sentences") or []:
        sentence = SentenceRef(text=rec["text"], span=list(rec["span"]), index=rec.get("index"))
        common = dict(sentence=sentence, kind=rec.get("kind"), region=rec.get("region"), score_name="confidence")
        for b in rec.get("boxes") or []:
            conf = _round(b.get("confidence"))
            findings.append(
                Finding(
                    id=f"f{len(findings) + 1}",
                    grounded=True,
                    label=b["label"],
                    label_name=b["label_name"],
                    boxes=[_box(b["box_vox"], b.get("box_mm"), geometry, conf)],
                    score=conf,
                    **common,
                )
            )
        if not rec.get("boxes") and rec.get("kind") == "finding":
            findings.append(
                Finding(
                    id=f"f{len(findings) + 1}",
                    grounded=False,
                    score=_round(rec.get("max_confidence")),
                    reason=f"no box above the confidence threshold {threshold}",
                    **common,
                )
            )
    return GroundingResult(model=_model(result, TaskType.PHRASE_GROUNDING), image=geometry, findings=findings, segments=_segments(result, findings))


def region_report(result: dict[str, Any], geometry: Optional[ImageGeometry]) -> GroundingResult:
    """``regions``: a generated report region by region, each tied to its region mask (reg2rg)."""
    names = {int(v): str(k) for k, v in (result.get("label_names") or {}).items()}
    regions = [
        RegionReport(
            region=r["region"],
            text=r.get("text") or "",
            label=r.get("label"),
            label_name=names.get(r.get("label")) if r.get("label") is not None else None,
            recognised_area=r.get("recognised_area"),
            matched=r.get("matched"),
        )
        for r in result.get("regions") or []
    ]
    return GroundingResult(
        model=_model(result, TaskType.REGION_REPORT),
        image=geometry,
        segments=_segments(result, []),
        region_reports=regions,
        generated_report=result.get("report"),
    )


def query_grounding(result: dict[str, Any], geometry: Optional[ImageGeometry]) -> GroundingResult:
    """``query`` + a mask (+ ``boxes_vox``): one free-form query grounded to one object (medvolr1,
    segdetexplain).

    The query takes the place of the sentence (span over the whole query). Boxes are scored by
    ``box_scores`` when the task gives them (segdetexplain's objectness), else by the answer's
    ``confidence`` (medvolr1's policy). The task's evidence goes to ``extra``: key slice, reasoning
    and 2D boxes (medvolr1), appearance text and per-slice texts (segdetexplain). An empty mask is
    kept as an ungrounded finding with the task's reason (``empty_reason``) or a generic one.
    """
    query = str(result.get("query") or "")
    names = {str(k): int(v) for k, v in (result.get("label_names") or {}).items()}
    label, name = (next(iter(names.values())), next(iter(names))) if names else (None, None)
    grounded = bool(result.get("n_voxels")) and label is not None
    conf = _round(result.get("confidence"))
    boxes_vox = result.get("boxes_vox") or []
    scores = result.get("box_scores") or [conf] * len(boxes_vox)
    extra = {k: result[k] for k in ("key_slice", "key_slice_z", "boxes_2d", "think", "appearance") if k in result}
    if result.get("slices"):
        extra["slices"] = [{k: r[k] for k in ("slice", "text", "routing") if k in r} for r in result["slices"]]
    finding = Finding(
        id="f1",
        sentence=SentenceRef(text=query, span=[0, len(query)], index=None),
        kind="query",
        organ=result.get("target"),
        grounded=grounded,
        label=label if grounded else None,
        label_name=name if grounded else None,
        boxes=[_box(b, None, geometry, _round(sc)) for b, sc in zip(boxes_vox, scores)] if geometry is not None else [],
        score=conf,
        score_name="confidence" if conf is not None else None,
        reason=None if grounded else str(result.get("empty_reason") or "the model found no voxels for the query"),
        measured=MeasuredAttributes(volume_ml=_round(result.get("volume_ml"))),
        extra=extra,
    )
    return GroundingResult(model=_model(result, TaskType.PHRASE_GROUNDING), image=geometry, findings=[finding], segments=_segments(result, [finding]))


def segmentation(result: dict[str, Any], geometry: Optional[ImageGeometry]) -> GroundingResult:
    """A plain label map with named classes (lesion_baseline, anatomy): segments only."""
    return GroundingResult(model=_model(result, TaskType.SEGMENTATION), image=geometry, segments=_segments(result, []))


ADAPTERS: dict[str, Adapter] = {
    "lesion_grounding": lesion_grounding,
    "phrase_grounding": phrase_grounding,
    "region_report": region_report,
    "query_grounding": query_grounding,
    "slice_query": query_grounding,
    "segmentation": segmentation,
}
