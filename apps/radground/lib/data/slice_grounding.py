"""Slice-level grounding samples for Seg-det-explain (001 §3, §4) from the synthetic studies.

One sample = one axial slice x one object (an organ, or the lesions of one organ): the HU slice,
a question, the answer (the appearance sentence of :mod:`lib.data.appearance` followed by the
routing tokens), the §4 JSON, the binary mask and one box per connected component (001 allows
K_ij boxes per object). Slices are chosen per object as §4 does: onset, peak and offset are kept;
a slice in between is kept only if its mask differs from the last kept one (IoU < 0.75 or area
change > 25%); objects whose peak area is small, or that are fragmented on a slice, keep every
slice (the "protection for small or complex structures").

Works on any volume + structure map + lesion map (array order [i, j, k], k axial), so the train
task reads the same samples from the datastore as the scripts do from the synthetic engine.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
from scipy import ndimage

from lib.anatomy.labels import ABDOMEN_ORGANS, ANATOMY_STRUCTURES, ORGAN_DISPLAY

from .appearance import appearance_sentence, describe

SEG, DET, CLOSER = "[seg]", "[det]", "[closer]"
ROUTING_TOKENS = (SEG, DET, CLOSER)
#: The intents a question can carry and the routing tokens its answer ends with (001 eq. 2).
TASK_TOKENS = {"seg": (SEG,), "det": (DET,), "segdet": (SEG, DET)}
QUESTIONS = {
    "seg": "Segment the {name} in this CT slice.",
    "det": "Detect the {name} in this CT slice.",
    "segdet": "Describe, segment and detect the {name} in this CT slice.",
}
CLOSER_QUESTION = "Can you have a closer look at the {name}?"
#: The answer on a slice the object is not on: no routing token, so no visual branch is called (eq. 2).
ABSENT_ANSWER = "The {name} is not visible in this slice."
SELECTION_IOU = 0.75
SELECTION_AREA_CHANGE = 0.25
#: Peak area (mm^2) below which an object keeps every slice it appears on.
SMALL_OBJECT_MM2 = 150.0
#: Connected components smaller than this (pixels) get no box of their own.
MIN_BOX_PIXELS = 2


@dataclass
class SliceSample:
    study_id: str
    slice_index: int
    target: str  # display name, e.g. "liver", "liver lesion"
    kind: str  # organ | lesion
    image: np.ndarray = field(repr=False)  # HU, [i, j]
    mask: np.ndarray = field(repr=False)  # bool, [i, j]
    boxes: np.ndarray = field(repr=False)  # (K, 4) pixel boxes (i1, j1, i2, j2), upper exclusive
    appearance: dict = field(default_factory=dict)
    spacing: tuple[float, float] = (1.0, 1.0)
    task: str = "segdet"
    question: str = ""
    answer: str = ""
    closer_question: str = ""
    closer_answer: str = ""


def target_name(key: str, kind: str = "organ") -> str:
    name = ORGAN_DISPLAY.get(key, key.replace("_", " "))
    return f"{name} lesion" if kind == "lesion" else name


def component_boxes(mask: np.ndarray, min_pixels: int = MIN_BOX_PIXELS) -> np.ndarray:
    """One (i1, j1, i2, j2) box per connected component of ``mask`` (8-connected, upper exclusive)."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    boxes = []
    for c, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is not None and (lab[sl] == c).sum() >= min_pixels:
            boxes.append([sl[0].start, sl[1].start, sl[0].stop, sl[1].stop])
    if not boxes and mask.any():
        idx = np.argwhere(mask)
        boxes.append([*idx.min(0), *(idx.max(0) + 1)])
    return np.asarray(boxes, float).reshape(-1, 4)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def select_slices(mask3d: np.ndarray, pixel_mm2: float = 1.0, iou: float = SELECTION_IOU, area_change: float = SELECTION_AREA_CHANGE, small_mm2: float = SMALL_OBJECT_MM2) -> list[int]:
    """Axial indices kept for one object (001 §4; see module docstring). ``mask3d`` is [i, j, k]."""
    areas = mask3d.reshape(-1, mask3d.shape[2]).sum(0)
    present = np.nonzero(areas)[0]
    if present.size == 0:
        return []
    onset, offset, peak = int(present[0]), int(present[-1]), int(present[np.argmax(areas[present])])
    if areas[peak] * pixel_mm2 < small_mm2:
        return [int(k) for k in present]
    keep = {onset, peak, offset}
    last = onset
    for k in present[1:]:
        k = int(k)
        fragmented = ndimage.label(mask3d[:, :, k], structure=np.ones((3, 3), bool))[1] > 1
        changed = abs(areas[k] - areas[last]) / max(areas[last], 1) > area_change
        if fragmented or changed or _iou(mask3d[:, :, k], mask3d[:, :, last]) < iou:
            keep.add(k)
        if k in keep:
            last = k
    return sorted(keep)


def negative_slices(mask3d: np.ndarray, n: int = 1, gap: int = 2) -> list[int]:
    """Up to ``n`` slices without the object, ``gap`` slices beyond its offset, then its onset."""
    present = np.nonzero(mask3d.reshape(-1, mask3d.shape[2]).any(0))[0]
    if present.size == 0:
        return []
    nz = mask3d.shape[2]
    cand = [k for k in (int(present[-1]) + gap, int(present[0]) - gap) if 0 <= k < nz and not mask3d[:, :, k].any()]
    return cand[:n]


def absent_sample(study_id, k, target, kind, image, spacing, task) -> SliceSample:
    return SliceSample(
        study_id=study_id,
        slice_index=int(k),
        target=target,
        kind=kind,
        image=image,
        mask=np.zeros(image.shape, bool),
        boxes=np.zeros((0, 4)),
        appearance={},
        spacing=tuple(float(s) for s in spacing[:2]),
        task=task,
        question=QUESTIONS[task].format(name=target),
        answer=ABSENT_ANSWER.format(name=target),
    )


def task_for(study_id: str, k: int, target: str, tasks: Sequence[str]) -> str:
    """A deterministic intent per (study, slice, object), spread over ``tasks``."""
    return tasks[zlib.crc32(f"{study_id}/{k}/{target}".encode()) % len(tasks)]


def make_sample(study_id, k, target, kind, image, mask, structures, names, self_ids, spacing, task, host=None, host_name="", region="abdomen") -> SliceSample:
    app = describe(mask, image, spacing, structures, names, self_ids=self_ids, host_mask=host, host_name=host_name)
    answer = f"{appearance_sentence(target, app, region)} {' '.join(TASK_TOKENS[task])}"
    return SliceSample(
        study_id=study_id,
        slice_index=int(k),
        target=target,
        kind=kind,
        image=image,
        mask=mask,
        boxes=component_boxes(mask),
        appearance=app,
        spacing=tuple(float(s) for s in spacing[:2]),
        task=task,
        question=QUESTIONS[task].format(name=target),
        answer=answer,
        closer_question=CLOSER_QUESTION.format(name=target),
        closer_answer=f"{CLOSER}",
    )


def volume_samples(
    study_id: str,
    image: np.ndarray,
    structures: np.ndarray,
    spacing: Sequence[float],
    lesions: Optional[np.ndarray] = None,
    organs: Optional[Mapping[str, int]] = None,
    with_lesions: bool = True,
    tasks: Sequence[str] = ("segdet", "seg", "det", "segdet"),
    region: str = "abdomen",
    negatives: int = 1,
) -> list[SliceSample]:
    """Every selected (slice, object) sample of one volume. ``organs``: name -> id in ``structures``
    (default the abdominal organs); lesions are grouped per host organ ("liver lesion").
    ``negatives``: slices per organ where it is absent (answered with :data:`ABSENT_ANSWER`)."""
    organs = dict(organs or ABDOMEN_ORGANS)
    names = {v: ORGAN_DISPLAY.get(k, k) for k, v in ANATOMY_STRUCTURES.items()}
    pixel_mm2 = float(spacing[0]) * float(spacing[1])
    out: list[SliceSample] = []
    for key, oid in organs.items():
        m3 = structures == oid
        target = target_name(key)
        for k in select_slices(m3, pixel_mm2):
            task = task_for(study_id, k, target, tasks)
            out.append(make_sample(study_id, k, target, "organ", image[:, :, k], m3[:, :, k], structures[:, :, k], names, [oid], spacing, task, region=region))
        for k in negative_slices(m3, negatives) if negatives else []:
            out.append(absent_sample(study_id, k, target, "organ", image[:, :, k], spacing, task_for(study_id, k, target, tasks)))
    if with_lesions and lesions is not None and lesions.any():
        lesion_names = {**names, 255: "lesion"}
        for key, oid in organs.items():
            host3 = structures == oid
            ids = [int(i) for i in np.unique(lesions[host3]) if i > 0]
            if not ids:
                continue
            m3 = np.isin(lesions, ids)
            target = target_name(key, "lesion")
            for k in select_slices(m3, pixel_mm2, small_mm2=float("inf")):  # lesions are small: keep every slice
                task = task_for(study_id, k, target, tasks)
                smap = np.where(m3[:, :, k], 255, structures[:, :, k])
                host = host3[:, :, k] & ~m3[:, :, k]
                out.append(
                    make_sample(study_id, k, target, "lesion", image[:, :, k], m3[:, :, k], smap, lesion_names, [255], spacing, task, host, ORGAN_DISPLAY.get(key, key), region)
                )
    return out


def study_samples(study, **kw) -> list[SliceSample]:
    """Samples of a synthetic :class:`lib.data.synthetic.Study` (abdominal organs + lesions by default)."""
    return volume_samples(study.study_id, study.image, study.organs, study.spacing, lesions=study.lesions, **kw)


def synthetic_samples(seeds: Iterable[int], preset: str = "small", body: str = "abdomen", **kw) -> list[SliceSample]:
    """Samples of the synthetic studies ``seeds`` (generated in memory)."""
    from lib.data.synthetic import generate_study

    out: list[SliceSample] = []
    for seed in seeds:
        out.extend(study_samples(generate_study(int(seed), preset, body=body), **kw))
    return out
