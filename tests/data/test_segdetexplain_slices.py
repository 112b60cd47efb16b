"""Slice-level grounding data (001 §4): slice selection, boxes, the measured appearance JSON and
the answer sentence, including that the stated position agrees with the mask centroid."""
from __future__ import annotations

import numpy as np
import pytest

from lib.data.appearance import appearance_sentence, body_extent, describe, mask_position, position_phrase, shape_word, stated_position
from lib.data.slice_grounding import ABSENT_ANSWER, CLOSER, DET, SEG, TASK_TOKENS, component_boxes, negative_slices, select_slices, synthetic_samples


def _disk(n, c, r):
    i, j = np.mgrid[:n, :n]
    return (i - c[0]) ** 2 + (j - c[1]) ** 2 <= r * r


def test_selection_keeps_onset_peak_offset_and_drops_redundant_slices():
    n = 40
    m = np.zeros((n, n, 12), bool)
    radii = [3, 6, 9, 9, 9, 9, 12, 9, 9, 6, 3, 0]
    for k, r in enumerate(radii):
        if r:
            m[:, :, k] = _disk(n, (20, 20), r)
    kept = select_slices(m, pixel_mm2=4.0)
    assert kept[0] == 0 and kept[-1] == 10 and 6 in kept  # onset, offset, peak
    assert 3 not in kept and 4 not in kept  # same mask as slice 2: redundant
    assert 11 not in kept  # background only
    shifted = m.copy()
    shifted[:, :, 4] = _disk(n, (20, 30), 9)  # same area, moved: IoU < 0.75 -> kept
    assert 4 in select_slices(shifted, pixel_mm2=4.0)
    assert select_slices(m, pixel_mm2=0.01) == list(range(11))  # a small object keeps every slice
    assert select_slices(np.zeros((4, 4, 3), bool)) == []


def test_negative_slices_are_outside_the_object():
    m = np.zeros((8, 8, 10), bool)
    m[2:5, 2:5, 3:6] = True
    neg = negative_slices(m, n=2, gap=2)
    assert neg == [7, 1] and not m[:, :, neg].any()


def test_component_boxes_one_per_blob_upper_exclusive():
    m = np.zeros((20, 20), bool)
    m[2:5, 3:7] = True
    m[10:12, 10:18] = True
    boxes = component_boxes(m)
    assert sorted(map(tuple, boxes.tolist())) == [(2, 3, 5, 7), (10, 10, 12, 18)]


def test_position_phrase_thirds_of_the_body():
    ext = (0, 0, 90, 90)
    assert position_phrase((10, 10), ext) == "right anterior"  # low i = patient right, low j = anterior
    assert position_phrase((80, 80), ext) == "left posterior"
    assert position_phrase((45, 45), ext) == "central"
    assert position_phrase((10, 45), ext) == "right"
    assert stated_position("The liver is ... in the left posterior abdomen, adjacent to ...") == "left posterior"
    assert stated_position("... in the central abdomen; ...") == "central"
    assert stated_position("no position here") is None


def test_describe_measures_size_shape_and_relative_intensity():
    img = np.full((60, 60), -1000.0)
    body = _disk(60, (30, 30), 28)
    img[body] = 60.0
    organ = _disk(60, (20, 20), 10)
    lesion = _disk(60, (20, 20), 3)
    img[lesion] = 10.0
    structures = np.where(organ, 1, np.where(body, 7, 0))
    app = describe(lesion, img, (2.0, 2.0), np.where(lesion, 255, structures), {1: "liver", 7: "vertebra", 255: "lesion"}, self_ids=[255], host_mask=organ & ~lesion, host_name="liver")
    assert app["size"].endswith("14 x 14 mm")  # 7 pixels x 2 mm
    assert app["shape"] == "round"
    assert app["intensity"].startswith("hypodense to the liver")
    assert app["adjacency"][0] == "liver"
    assert app["position"] == mask_position(lesion, img)
    rect = np.zeros((60, 60), bool)
    rect[10:50, 28:32] = True
    assert shape_word(rect, (1.0, 1.0)) == "elongated"
    with pytest.raises(ValueError):
        describe(np.zeros((4, 4), bool), np.zeros((4, 4)), (1, 1), np.zeros((4, 4), int), {})


@pytest.fixture(scope="module")
def samples():
    return synthetic_samples([3], "small")


def test_answers_state_the_position_of_their_own_mask(samples):
    """The stated position word agrees with the mask centroid (measured in the body's thirds)."""
    positive = [x for x in samples if x.mask.any()]
    assert len(positive) > 20
    for x in positive:
        said = stated_position(x.answer)
        assert said == mask_position(x.mask, x.image) == x.appearance["position"]
        i, j = np.argwhere(x.mask).mean(0)
        ext = body_extent(x.image)
        lr = "right" if i + 0.5 < ext[0] + (ext[2] - ext[0]) / 3 else ("left" if i + 0.5 > ext[0] + 2 * (ext[2] - ext[0]) / 3 else "central")
        assert said.split()[0] == lr


def test_samples_carry_routing_tokens_boxes_and_sizes(samples):
    targets = {x.target for x in samples}
    assert {"liver", "spleen", "left kidney", "pancreas"} <= targets
    for x in samples:
        if not x.mask.any():
            assert x.answer == ABSENT_ANSWER.format(name=x.target) and len(x.boxes) == 0
            assert not any(t in x.answer for t in (SEG, DET, CLOSER))
            continue
        assert x.answer.endswith(" ".join(TASK_TOKENS[x.task]))
        assert x.answer.startswith(f"The {x.target} is a ")
        assert x.closer_answer == CLOSER
        idx = np.argwhere(x.mask)
        lo, hi = idx.min(0), idx.max(0) + 1
        assert (x.boxes[:, :2] >= lo).all() and (x.boxes[:, 2:] <= hi).all()  # boxes inside the mask's extent
        w, h = (hi - lo) * np.asarray(x.spacing)
        assert f"{int(round(w))} x {int(round(h))} mm" in x.answer
        assert appearance_sentence(x.target, x.appearance) in x.answer
