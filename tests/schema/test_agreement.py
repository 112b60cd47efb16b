"""Per-lesion agreement between models (ground_all): sentence grouping, Hungarian assignment on IoU,
mask IoU between mask models and box IoU with a box model, each checked against numpy by hand."""
from __future__ import annotations

import numpy as np
import pytest

from lib.schema import Box, Finding, GroundingResult, ModelInfo, Segment, SentenceRef, TaskType
from lib.schema.agreement import ModelAnswer, finding_iou, lesion_agreement

SHAPE = (24, 24, 12)
S0 = SentenceRef(text="Two liver lesions.", span=[0, 18], index=0)
S1 = SentenceRef(text="Right lung nodule.", span=[19, 37], index=1)


def _box(lo, hi) -> Box:
    return Box(voxel=[list(lo), list(hi)], mm=[[float(v) for v in lo], [float(v + 1) for v in hi]])


def _answer(name, task_type, items):
    """items: (sentence, (lo, hi) inclusive voxel box or None, reason); masks are the filled boxes."""
    label = np.zeros(SHAPE, np.uint8)
    findings, segments = [], []
    for n, (sentence, box, reason) in enumerate(items, start=1):
        if box is None:
            findings.append(Finding(id=f"f{n}", sentence=sentence, grounded=False, reason=reason))
            continue
        (lo, hi) = box
        label[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = n
        findings.append(Finding(id=f"f{n}", sentence=sentence, grounded=True, label=n, label_name=f"{name} {n}", boxes=[_box(lo, hi)]))
        segments.append(Segment(label=n, name=f"{name} {n}", finding_ids=[f"f{n}"]))
    g = GroundingResult(model=ModelInfo(name=name, version="v", task_type=task_type), findings=findings, segments=segments)
    return ModelAnswer(name, g, label)


def _cube(lo, hi):
    m = np.zeros(SHAPE, bool)
    m[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = True
    return m


def _box_iou(a, b):
    """IoU of inclusive voxel boxes, by counting voxels."""
    ma, mb = _cube(*a), _cube(*b)
    return (ma & mb).sum() / (ma | mb).sum()


A1, A2 = ((2, 2, 2), (6, 6, 5)), ((12, 12, 2), (16, 16, 5))
C1 = ((3, 3, 2), (7, 7, 6))
B1, B2, B3 = ((13, 11, 3), (18, 15, 6)), ((20, 0, 0), (23, 3, 2)), ((4, 14, 7), (8, 18, 10))


@pytest.fixture
def answers():
    gleve = _answer("gleve", TaskType.LESION_GROUNDING, [(S0, A1, None), (S0, A2, None), (S1, None, "the lung was not found in this image")])
    boxes = _answer("medgrounder", TaskType.PHRASE_GROUNDING, [(S0, B1, None), (S0, B2, None), (S1, B3, None)])
    other = _answer("medvolr1", TaskType.LESION_GROUNDING, [(S0, C1, None)])
    return [gleve, boxes, other]


def test_iou_is_mask_iou_between_mask_models_and_box_iou_with_a_box_model(answers):
    gleve, boxes, other = answers
    iou, measure = finding_iou(gleve.grounding.finding("f1"), gleve, other.grounding.finding("f1"), other)
    m1, m2 = _cube(*A1), _cube(*C1)
    assert measure == "mask" and iou == pytest.approx((m1 & m2).sum() / (m1 | m2).sum())
    iou, measure = finding_iou(gleve.grounding.finding("f2"), gleve, boxes.grounding.finding("f1"), boxes)
    assert measure == "box" and iou == pytest.approx(_box_iou(A2, B1), rel=1e-5)


def test_lesions_are_matched_within_each_sentence(answers):
    entries = lesion_agreement(answers)
    assert [e["sentence"]["index"] for e in entries] == [0, 0, 0, 1]
    first, second, only_boxes, lung = entries
    # gleve opens one lesion per finding; medvolr1's mask overlaps the first, medgrounder's first box the second
    assert {m: f["finding_id"] for m, f in first["models"].items()} == {"gleve": "f1", "medvolr1": "f1"}
    assert first["missing"] == {"medgrounder": "no finding for this sentence"}
    assert {m: f["finding_id"] for m, f in second["models"].items()} == {"gleve": "f2", "medgrounder": "f1"}
    assert second["iou"][0]["iou"] == pytest.approx(_box_iou(A2, B1), abs=1e-4) and second["iou"][0]["measure"] == "box"
    assert second["mean_iou"] == second["iou"][0]["iou"]
    # medgrounder's second box overlaps nothing: a lesion only it saw
    assert list(only_boxes["models"]) == ["medgrounder"] and only_boxes["mean_iou"] is None
    assert set(only_boxes["missing"]) == {"gleve", "medvolr1"}
    # the lung sentence: gleve's own reason is kept
    assert list(lung["models"]) == ["medgrounder"]
    assert lung["missing"]["gleve"] == "the lung was not found in this image"
    assert [e["id"] for e in entries] == ["L1", "L2", "L3", "L4"]


def test_a_sentence_nobody_grounded_is_one_entry_with_every_reason():
    a = _answer("gleve", TaskType.LESION_GROUNDING, [(S0, None, "no response above the adaptive threshold")])
    b = _answer("medgrounder", TaskType.PHRASE_GROUNDING, [(S0, None, "no box above the confidence threshold 0.5")])
    regions = ModelAnswer("reg2rg", GroundingResult(model=ModelInfo(name="reg2rg", version="v", task_type=TaskType.REGION_REPORT)))
    (entry,) = lesion_agreement([a, b, regions])
    assert entry["models"] == {} and entry["n_models"] == 0
    assert entry["missing"] == {"gleve": "no response above the adaptive threshold", "medgrounder": "no box above the confidence threshold 0.5"}
