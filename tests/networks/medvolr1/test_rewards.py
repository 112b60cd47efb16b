import numpy as np
import pytest

from lib.networks.medvolr1.answer import format_response, parse_response
from lib.networks.medvolr1.rewards import axial_reward, compute_rewards, hungarian_iou, local_dice


def target():
    """Two blobs on slice 4 (the largest), one on slices 3 and 5, nothing else."""
    m = np.zeros((10, 32, 32), bool)
    m[4, 2:10, 2:8] = True
    m[4, 20:26, 20:30] = True
    m[3, 2:6, 2:6] = True
    m[5, 3:7, 3:7] = True
    return m


def parsed(slice_number, boxes):
    return parse_response(format_response("x", slice_number, boxes), 10, 32)


def test_axial_reward_is_visibility_ratio():
    m = target()
    assert axial_reward(m, 4) == 1.0
    assert axial_reward(m, 3) == pytest.approx(16 / (48 + 60))
    assert axial_reward(m, 0) == 0.0


def test_hungarian_iou_normalises_by_the_larger_set():
    truth = np.array([[2, 2, 10, 8], [20, 20, 26, 30]], float)
    assert hungarian_iou(truth[::-1], truth)[0] == pytest.approx(1.0)  # order does not matter
    assert hungarian_iou(truth[:1], truth)[0] == pytest.approx(0.5)  # a missed target
    extra = np.vstack([truth, [[0, 0, 1, 1]]])
    assert hungarian_iou(extra, truth)[0] == pytest.approx(2 / 3)  # a spurious box
    assert hungarian_iou(np.zeros((0, 4)), truth)[0] == 0.0


def test_perfect_answer_scores_every_term():
    m = target()
    r = compute_rewards(parsed(5, [[2, 2, 10, 8], [20, 20, 26, 30]]), np.zeros(m.shape), m, propagate=lambda img, k, b: m)
    assert (r.f, r.a, r.s, r.c) == (1.0, 1.0, pytest.approx(1.0), 1.0)
    assert r.total == pytest.approx(4.0)


def test_malformed_answer_scores_zero_on_all_terms():
    m = target()
    calls = []
    r = compute_rewards(parse_response("<think>x</think>", 10, 32), np.zeros(m.shape), m, propagate=lambda *a: calls.append(a) or m)
    assert r.as_dict() == {"f": 0.0, "a": 0.0, "s": 0.0, "c": 0.0, "total": 0.0}
    assert not calls


def test_rc_uses_matched_boxes_and_local_window():
    m = target()
    seen = []

    def prop(img, k, boxes):
        seen.append((k, boxes.copy()))
        out = np.zeros_like(m)
        out[k] = m[k]
        return out

    r = compute_rewards(parsed(5, [[2, 2, 10, 8]]), np.zeros(m.shape), m, prop, delta=0)
    assert seen[0][0] == 4 and seen[0][1].tolist() == [[2, 2, 10, 8]]
    assert r.c == 1.0  # only the key slice is compared with delta 0
    r2 = compute_rewards(parsed(5, [[2, 2, 10, 8]]), np.zeros(m.shape), m, prop, delta=1)
    assert r2.c < 1.0


def test_weight_zero_removes_rc_and_skips_propagation():
    m = target()
    r = compute_rewards(parsed(5, [[2, 2, 10, 8]]), np.zeros(m.shape), m, lambda *a: pytest.fail("propagated"), weights={"c": 0.0})
    assert r.c == 0.0 and r.total == pytest.approx(r.f + r.a + r.s)


def test_local_dice_window():
    m = target()
    far = np.zeros_like(m)
    far[0, :2, :2] = True
    assert local_dice(far, m, 4, 1) == 0.0
    assert local_dice(m | far, m, 4, 1) == 1.0  # the far slice is outside the window
