"""§3.5 grounding metrics on hand-made box sets whose answers are worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lib.metrics.grounding import centre_hits, format_table, mask_iou, score_sentence, set_f1, summarise

A = [0, 0, 0, 10, 10, 10]
B = [20, 20, 20, 30, 30, 30]
SHAPE = (40, 40, 40)


def test_set_f1_exact_sets_extras_and_misses():
    assert set_f1([], []) == 1.0
    assert set_f1([A], []) == 0.0 and set_f1([], [A]) == 0.0
    assert set_f1([A], [A]) == 1.0
    assert set_f1([A, B], [B, A]) == 1.0  # order does not matter
    assert set_f1([A, B], [A]) == pytest.approx(2 / 3)  # an extra box: P = 1/2, R = 1
    assert set_f1([A], [A, B]) == pytest.approx(2 / 3)
    shifted = [4, 0, 0, 14, 10, 10]  # IoU = 600 / 1400 < 0.5
    assert set_f1([shifted], [A]) == 0.0
    near = [2, 0, 0, 12, 10, 10]  # IoU = 800 / 1200 >= 0.5
    assert set_f1([near], [A]) == 1.0
    # one-to-one: two predictions on the same true box are one hit and one extra
    assert set_f1([A, A], [A]) == pytest.approx(2 / 3)


def test_centre_hits():
    assert centre_hits([[4, 4, 4, 20, 20, 20]], [A]) == (0, 0)  # centre (12,12,12) outside A
    assert centre_hits([[2, 2, 2, 12, 12, 12], [1, 1, 1, 9, 9, 9]], [A, B]) == (2, 1)
    assert centre_hits([], [A]) == (0, 0)


def test_mask_iou():
    assert mask_iou([A], [A], SHAPE) == 1.0
    assert mask_iou([[0, 0, 0, 10, 10, 5]], [A], SHAPE) == pytest.approx(0.5)
    assert mask_iou([A, B], [A], SHAPE) == pytest.approx(0.5)  # union of predictions
    assert mask_iou([], [A], SHAPE) == 0.0


def test_summary_by_category():
    s = [
        score_sentence([], [], SHAPE),  # zero-box, abstains: N-Acc hit, F1 = 1
        score_sentence([A], [], SHAPE),  # zero-box, false box
        score_sentence([A], [A], SHAPE),  # single, exact
        score_sentence([A, B], [A], SHAPE),  # single, one extra
        score_sentence([A, B], [A, B], SHAPE),  # multi, exact
        score_sentence([A], [A, B], SHAPE),  # multi, one missed
    ]
    r = summarise(s)
    assert r["zero"]["n"] == 2 and r["zero"]["N-Acc"] == 0.5 and r["zero"]["P@F1=1"] == 0.5
    assert r["single"]["P@F1=1"] == 0.5 and r["multi"]["P@F1=1"] == 0.5
    assert math.isnan(r["single"]["N-Acc"])
    # single: predictions 3, hitting 2; true 2, hit 2 -> P 2/3, R 1
    assert r["single"]["CH-P"] == pytest.approx(2 / 3) and r["single"]["CH-R"] == 1.0
    assert r["single"]["CH-F1"] == pytest.approx(0.8)
    # overall: predictions 1 + 1 + 2 + 2 + 1 = 7, hits 0 + 1 + 1 + 2 + 1 = 5; true 6, hit 5
    assert r["overall"]["CH-P"] == pytest.approx(5 / 7) and r["overall"]["CH-R"] == pytest.approx(5 / 6)
    assert r["overall"]["P@F1=1"] == pytest.approx(3 / 6)
    # mask IoU over groundable sentences only: 1, 0.5, 1, 0.5
    assert r["overall"]["mIoU"] == pytest.approx(0.75) and r["overall"]["Acc"] == 1.0
    table = format_table({"without WBF": r, "with WBF": r})
    assert "without WBF" in table and "| 50.0 |" in table


def test_2d_boxes():
    s = score_sentence([[0, 0, 10, 10], [20, 20, 30, 30]], [[0, 0, 10, 10], [20, 20, 30, 30]], (32, 32))
    assert s.category == "multi" and s.f1 == 1.0 and s.mask_iou == 1.0
