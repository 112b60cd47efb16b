"""The shared per-organ evaluation on a toy study with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lib.metrics.evaluation import evaluate_study, markdown_table, summarise

SHAPE = (40, 40, 20)


def _toy():
    organs = np.zeros(SHAPE, np.uint8)
    organs[:15] = 1  # liver
    organs[15:28] = 3  # right kidney
    gt = np.zeros(SHAPE, np.uint8)
    gt[2:6, 2:6, 2:6] = 1  # liver lesion
    gt[20:24, 20:24, 2:6] = 2  # kidney lesion
    return organs, gt


def test_perfect_prediction_scores_one_everywhere():
    organs, gt = _toy()
    r = evaluate_study("s", gt > 0, gt, organs, (1, 1, 1), gt_organ={1: "liver", 2: "kidney_right"})
    assert r.dice == {"kidney": 1.0, "liver": 1.0}
    assert r.hd95 == {"kidney": 0.0, "liver": 0.0}
    table = summarise([r])
    assert table["all"]["LR"] == 1.0 and table["all"]["LLS"] == pytest.approx(1.0)
    assert table["liver"]["n_lesions"] == 1 and math.isnan(table["pancreas"]["Dice"])


def test_missing_the_kidney_lesion_and_a_false_positive_in_the_liver():
    organs, gt = _toy()
    pred = np.zeros(SHAPE, bool)
    pred[2:6, 2:6, 2:6] = True
    pred[10:12, 30:32, 10:12] = True  # 8 voxels, in the liver, no lesion there
    r = evaluate_study("s", pred, gt, organs, (1, 1, 1))
    assert r.dice["liver"] == pytest.approx(2 * 64 / (72 + 64))
    assert r.dice["kidney"] == 0.0
    table = summarise([r])
    assert table["all"]["LR"] == 0.5 and table["liver"]["false_positives"] == 1
    md = markdown_table({"baseline": table})
    assert "| baseline | liver | 1 |" in md and md.count("\n") == 5
