"""``ground_all`` combining its members' answers: which tasks join, a failing member, the agreement
label map and its names. Members are stand-ins that write real label files on one grid (the real
models run in tests/e2e/test_ground_all.py, through the server)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk

from lib.errors import ModelNotReadyError
from lib.infers.ground_all import GroundAllInfer, agreement_label_map
from lib.schema import GroundingResult
from lib.schema.agreement import ModelAnswer
from lib.schema.hook import attach_grounding
from lib.writers.label_writer import write_label

SHAPE = (20, 20, 10)
AFFINE = np.diag([-1.5, -1.5, 2.5, 1.0])  # RAS affine of a LPS-stored grid, as MONAI loads one
SENTENCE = "Two liver lesions in segments VI and VII."


class Member:
    """A grounding infer task's surface as ground_all uses it: attributes, is_valid, __call__."""

    def __init__(self, boxes, needs_report=True, valid=True, error=None, image_dims=3):
        self.boxes, self.needs_report, self.valid, self.error, self.calls = boxes, needs_report, valid, error, []
        self.image_dims = image_dims

    def is_valid(self):
        return self.valid

    def __call__(self, request):
        self.calls.append(request)
        if self.error:
            raise self.error
        label = np.zeros(SHAPE, np.uint8)
        lesions, names = [], {}
        for n, (lo, hi) in enumerate(self.boxes, start=1):
            label[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = n
            names[f"lesion {n}"] = n
            lesions.append({"sentence": SENTENCE, "span": [0, len(SENTENCE)], "sentence_index": 0, "label": n, "label_name": f"lesion {n}", "box_vox": [list(lo), list(hi)]})
        return write_label(label, AFFINE, ".nii.gz"), {"lesions": lesions, "label_names": names, "model": {"name": request["model"], "version": "v1"}}


@pytest.fixture
def members():
    return {
        "anatomy": Member([], needs_report=False),  # a segmenter: not a grounding task
        "gleve": Member([((2, 2, 2), (6, 6, 5)), ((12, 12, 2), (15, 15, 5))]),
        "medvolr1": Member([((3, 3, 2), (6, 6, 5))]),
        "untrained": Member([], valid=False),
        "radiographs": Member([], image_dims=2),  # a 2D task (chest radiographs): cannot read the CT
    }


def _task(members, wanted=None):
    task = GroundAllInfer(members=wanted)
    registry = dict(members, ground_all=task)
    task.bind_infers(registry)
    return task


def test_members_are_the_registered_trained_grounding_tasks(members):
    task = _task(members)
    assert task.members() == ["gleve", "medvolr1"] and task.is_valid()
    assert task.info()["members"] == ["gleve", "medvolr1"]
    assert _task(members, ["medvolr1", "nope"]).members() == ["medvolr1"]
    assert not _task({"anatomy": Member([], needs_report=False)}).is_valid()


def test_answers_side_by_side_with_an_agreement_label_map(members, tmp_path):
    task = _task(members)
    label_file, result = task({"model": "ground_all", "image": "ct.nii.gz", "report": SENTENCE, "result_extension": ".nrrd"})
    try:
        assert set(result["models"]) == {"gleve", "medvolr1"} and result["failed"] == {}
        for g in result["models"].values():
            GroundingResult.model_validate(g)
        assert all(c[-1]["model"] in ("gleve", "medvolr1") and c[-1]["report"] == SENTENCE for c in (members["gleve"].calls, members["medvolr1"].calls))
        first, second = result["agreement"]
        a, b = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
        a[2:7, 2:7, 2:6], b[3:7, 3:7, 2:6] = True, True
        assert first["iou"][0]["iou"] == pytest.approx((a & b).sum() / (a | b).sum(), abs=1e-4)
        assert list(second["models"]) == ["gleve"] and second["missing"] == {"medvolr1": "no finding for this sentence"}
        # the label map: lesion 1 = union of both masks, lesion 2 = gleve's alone; names say who found it
        assert label_file.endswith(".nrrd")
        arr = np.transpose(sitk.GetArrayFromImage(sitk.ReadImage(label_file)), (2, 1, 0))
        assert np.array_equal(arr == 1, a | b) and (arr == 2).sum() == 4 * 4 * 4
        assert list(result["label_names"]) == [f"L1 — gleve + medvolr1, IoU {first['mean_iou']:.2f}", "L2 — gleve"]
        g = GroundingResult.model_validate(result["grounding"])
        assert g.label_names() == result["label_names"]
    finally:
        os.remove(label_file)


def test_a_failing_member_is_reported_and_the_others_still_answer(members):
    members["medvolr1"].error = ModelNotReadyError("no trained checkpoint")
    members["broken"] = Member([], error=RuntimeError("bug"))
    label_file, result = _task(members)({"model": "ground_all", "image": "ct.nii.gz", "report": SENTENCE})
    os.remove(label_file)
    assert set(result["models"]) == {"gleve"}
    assert result["failed"]["medvolr1"] == "no trained checkpoint"
    assert "RuntimeError" in result["failed"]["broken"] and "bug" not in result["failed"]["broken"]


def test_overlapping_lesions_keep_the_small_one_visible_and_no_name_without_voxels():
    """A filled box around a mask, and an entry drawn entirely over: Slicer's names must still line up."""
    big = Member([((0, 0, 0), (19, 19, 9))])
    small = Member([((5, 5, 2), (7, 7, 4)), ((5, 5, 2), (6, 6, 3))])  # the second lies inside the first
    answers = {}
    for name, member in (("big", big), ("small", small)):
        path, result = member({"model": name})
        attach_grounding(result, path)
        answers[name] = ModelAnswer(name, GroundingResult.model_validate(result["grounding"]), np.transpose(sitk.GetArrayFromImage(sitk.ReadImage(path)), (2, 1, 0)))
        os.remove(path)
    entries = [  # report order: the small lesions first, the box around everything last
        {"id": "L1", "models": {"small": {"finding_id": "f2"}}, "mean_iou": None},
        {"id": "L2", "models": {"small": {"finding_id": "f1"}}, "mean_iou": None},
        {"id": "L3", "models": {"big": {"finding_id": "f1"}}, "mean_iou": None},
    ]
    label, names = agreement_label_map(entries, answers, SHAPE)
    # the small model's masks hold 8 and 27 - 8 voxels; drawn largest first, each stays visible
    assert (label == 1).sum() == 8 and (label == 2).sum() == 27 - 8 and (label == 3).sum() == 4000 - 27
    assert names == {"L1 — small": 1, "L2 — small": 2, "L3 — big": 3}
    entries[1]["models"] = {"small": {"finding_id": "f2"}}  # L2 now covers exactly L1's voxels: one of them vanishes
    label, names = agreement_label_map(entries, answers, SHAPE)
    assert len(names) == 2 and sorted(names.values()) == sorted(int(v) for v in np.unique(label) if v)
