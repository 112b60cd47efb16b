"""The schema's own rules: a result that breaks them does not validate."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from lib.schema import SCHEMA_VERSION, Box, Finding, GroundingResult, ModelInfo, Segment, SentenceRef, TaskType
from lib.schema.geometry import box_from_voxels
from lib.schema.measure import fill_measurements, long_axis_mm, measure_labels

MODEL = ModelInfo(name="m", version="abc", task_type=TaskType.LESION_GROUNDING)


def _finding(**kw):
    base = dict(id="f1", sentence=SentenceRef(text="A cyst.", span=[0, 7]), grounded=True, label=1, label_name="lesion 1")
    return Finding(**{**base, **kw})


def test_a_consistent_result_round_trips_through_json():
    r = GroundingResult(model=MODEL, findings=[_finding()], segments=[Segment(label=1, name="lesion 1", finding_ids=["f1"])])
    again = GroundingResult.model_validate_json(r.model_dump_json())
    assert again == r and again.schema_version == SCHEMA_VERSION and again.label_names() == {"lesion 1": 1}


@pytest.mark.parametrize(
    "bad",
    [
        dict(findings=[_finding()], segments=[]),  # label not in the label map
        dict(findings=[_finding()], segments=[Segment(label=1, name="other")]),  # name differs from the map's
        dict(findings=[_finding(), _finding()], segments=[Segment(label=1, name="lesion 1")]),  # duplicate ids
        dict(segments=[Segment(label=1, name="a"), Segment(label=2, name="a")]),  # duplicate names
    ],
)
def test_inconsistent_results_are_rejected(bad):
    with pytest.raises(ValidationError):
        GroundingResult(model=MODEL, **bad)


def test_findings_need_a_label_or_a_reason_and_ordered_boxes():
    with pytest.raises(ValidationError):
        _finding(label=None)
    with pytest.raises(ValidationError):
        _finding(grounded=False, label=None, label_name=None)  # no reason
    assert _finding(grounded=False, label=None, label_name=None, reason="organ absent").reason
    with pytest.raises(ValidationError):
        Box(voxel=[[3, 0, 0], [1, 1, 1]], mm=[[0, 0, 0], [1, 1, 1]])
    with pytest.raises(ValidationError):
        SentenceRef(text="x", span=[5, 2])
    with pytest.raises(ValidationError):
        GroundingResult(model=MODEL, schema_version="2.0")


def test_box_mm_is_outer_voxel_edges_and_lps_flips_x_and_y():
    affine = np.array([[-2.0, 0, 0, 10], [0, -2.0, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    b = box_from_voxels([[1, 2, 0], [1, 4, 2]], affine, score=0.7)
    # x: voxel 1 spans centres 10-2*1 = 8 -> edges 7..9; y: voxels 2..4 -> centres 16..12 -> edges 11..17; z: -5..1 -> edges -6.5..2.5
    assert b.mm == [[7.0, 11.0, -6.5], [9.0, 17.0, 2.5]] and b.score == 0.7
    lps = b.to_lps()
    assert lps.coordinate_system.value == "LPS" and lps.mm == [[-9.0, -17.0, -6.5], [-7.0, -11.0, 2.5]]
    assert lps.to_lps() == lps


def test_radiograph_boxes_are_2d_in_the_image_plane_and_3d_boxes_stay_3d():
    """A radiograph's box (medgrounder_cxr) is 2D in its image plane: accepted, never 'flipped' to
    LPS; a 2D box in a patient frame, or a box mixing 2 and 3 coordinates, is refused."""
    b = Box(voxel=[[3, 4], [10, 12]], mm=[[6.0, 8.0], [22.0, 26.0]], score=0.9)
    assert b.coordinate_system.value == "image" and b.to_lps() == b
    assert Box.model_validate(b.model_dump(mode="json")) == b
    with pytest.raises(ValidationError):
        Box(voxel=[[3, 4], [10, 12]], mm=[[6.0, 8.0], [22.0, 26.0]], coordinate_system="RAS")
    with pytest.raises(ValidationError):
        Box(voxel=[[3, 4], [10, 12, 1]], mm=[[6.0, 8.0], [22.0, 26.0]])
    with pytest.raises(ValidationError):
        Box(voxel=[[3, 4, 0], [10, 12, 1]], mm=[[6.0, 8.0, 0.0], [22.0, 26.0, 1.0]], coordinate_system="image")


def test_measurements_volume_long_axis_and_mean_hu():
    label = np.zeros((20, 20, 20), np.uint8)
    label[2:12, 5, 5] = 1  # a 10-voxel line along x
    label[15:18, 15:18, 15:18] = 2
    affine = np.diag([2.0, 1.0, 1.0, 1.0])
    ct = np.full(label.shape, -50.0)
    ct[label == 2] = 40.0
    m = measure_labels(label, affine, ct)
    assert m[1].long_axis_mm == pytest.approx(18.0) and m[1].volume_ml == pytest.approx(10 * 2 / 1000)
    assert m[2].long_axis_mm == pytest.approx(np.sqrt(4**2 + 2**2 + 2**2), abs=0.01) and m[2].mean_hu == 40.0
    assert long_axis_mm(label == 3, affine) == 0.0
    r = GroundingResult(model=MODEL, findings=[_finding(label=2, label_name="l2")], segments=[Segment(label=2, name="l2")])
    filled = fill_measurements(r, m)
    assert filled.findings[0].measured.long_axis_mm == m[2].long_axis_mm and r.findings[0].measured.long_axis_mm is None
