"""LR and LLS (000 eq. 9) on worked examples computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lib.metrics.lesion import aggregate, match_lesions, pairwise_dice, per_organ_lesion_scores

SHAPE = (40, 40, 20)


def _box(m, lo, hi, value=1):
    m[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = value
    return m


def _gt3():
    g = np.zeros(SHAPE, np.uint8)
    _box(g, (2, 2, 2), (6, 6, 6))  # lesion A: 64 voxels
    _box(g, (20, 20, 2), (24, 24, 6))  # lesion B
    _box(g, (30, 2, 10), (34, 6, 14))  # lesion C
    return g


def test_perfect_prediction():
    g = _gt3()
    s = match_lesions(g, g, spacing=(1, 1, 1))
    assert (s.n_gt, s.n_pred, s.n_matched) == (3, 3, 3)
    assert s.lesion_recall == 1.0
    assert s.lesion_localisation_score == pytest.approx(1.0)


def test_two_of_three_found_with_a_known_shift():
    g = _gt3()
    p = np.zeros(SHAPE, np.uint8)
    _box(p, (2, 2, 2), (6, 6, 6))  # A exact: Dice 1, d = 0
    _box(p, (20, 20, 4), (24, 24, 8))  # B shifted 2 voxels in z: overlap 32 -> Dice 0.5; d = 2 vox * 5 mm = 10 mm
    s = match_lesions(p, g, spacing=(2.0, 2.0, 5.0))
    assert s.n_matched == 2 and s.lesion_recall == pytest.approx(2 / 3)
    expected = (1.0 * math.exp(0) + 0.5 * math.exp(-10 / 20)) / 3
    assert s.lesion_localisation_score == pytest.approx(expected)
    dist = sorted(m.distance_mm for m in s.matches)
    assert dist == pytest.approx([0.0, 10.0])


def test_anisotropic_spacing_changes_the_distance():
    g, p = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    _box(g, (10, 10, 5), (14, 14, 9))
    _box(p, (11, 10, 5), (15, 14, 9))  # 1 voxel in x
    iso = match_lesions(p, g, (1, 1, 1)).matches[0].distance_mm
    aniso = match_lesions(p, g, (3, 1, 1)).matches[0].distance_mm
    assert iso == pytest.approx(1.0) and aniso == pytest.approx(3.0)


def test_low_dice_is_not_a_match():
    g, p = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
    _box(g, (0, 0, 0), (10, 10, 10))  # 1000 voxels
    _box(p, (9, 9, 0), (11, 11, 10))  # overlap 1*1*10 = 10 -> Dice 2*10/(1000+40) = 0.019
    s = match_lesions(p, g, (1, 1, 1))
    assert s.n_matched == 0 and s.lesion_recall == 0.0 and s.lesion_localisation_score == 0.0
    assert s.false_positives == 1


def test_one_prediction_covering_two_lesions_matches_only_one():
    g = np.zeros(SHAPE, np.uint8)
    _box(g, (2, 2, 2), (6, 6, 6))
    _box(g, (8, 2, 2), (12, 6, 6))
    p = np.zeros(SHAPE, np.uint8)
    _box(p, (2, 2, 2), (12, 6, 6))  # one component over both (160 voxels)
    s = match_lesions(p, g, (1, 1, 1))
    assert s.n_matched == 1
    assert s.matches[0].dice == pytest.approx(2 * 64 / (64 + 160))
    assert s.lesion_recall == 0.5


def test_no_gt_lesion_is_undefined_and_aggregation_skips_it():
    empty = np.zeros(SHAPE, np.uint8)
    p = _box(np.zeros(SHAPE, np.uint8), (1, 1, 1), (3, 3, 3))
    s0 = match_lesions(p, empty, (1, 1, 1))
    assert math.isnan(s0.lesion_recall) and math.isnan(s0.lesion_localisation_score) and s0.false_positives == 1
    g = _gt3()
    s1 = match_lesions(g, g, (1, 1, 1))
    agg = aggregate([s0, s1])
    assert agg["n_gt"] == 3 and agg["LR_micro"] == 1.0 and agg["LLS_macro"] == pytest.approx(1.0)
    assert agg["false_positives"] == 1


def test_micro_and_macro_differ_when_studies_differ_in_size():
    g = _gt3()
    half = g.copy()
    half[20:24, 20:24, 2:6] = 0
    half[30:34, 2:6, 10:14] = 0
    s_full = match_lesions(g, g, (1, 1, 1))  # 3/3
    g1 = _box(np.zeros(SHAPE, np.uint8), (2, 2, 2), (6, 6, 6))
    s_miss = match_lesions(np.zeros(SHAPE, np.uint8), g1, (1, 1, 1))  # 0/1
    agg = aggregate([s_full, s_miss])
    assert agg["LR_micro"] == pytest.approx(3 / 4)
    assert agg["LR_macro"] == pytest.approx(0.5)


def test_pairwise_dice_matrix():
    g = np.zeros((6, 6, 1), np.int32)
    p = np.zeros((6, 6, 1), np.int32)
    g[0:2, 0:2] = 1
    g[4:6, 4:6] = 2
    p[0:2, 0:1] = 1
    d = pairwise_dice(g, 2, p, 1)
    assert d.shape == (2, 1)
    assert d[0, 0] == pytest.approx(2 * 2 / (4 + 2)) and d[1, 0] == 0


def test_per_organ_split():
    organs = np.zeros(SHAPE, np.uint8)
    organs[:15] = 1  # liver
    organs[15:28] = 3  # right kidney
    organs[28:] = 5  # pancreas
    g = np.zeros(SHAPE, np.uint8)
    _box(g, (2, 2, 2), (6, 6, 6), 1)  # liver lesion
    _box(g, (20, 20, 2), (24, 24, 6), 2)  # kidney lesion
    p = np.zeros(SHAPE, np.uint8)
    _box(p, (2, 2, 2), (6, 6, 6))  # finds the liver lesion
    _box(p, (30, 30, 10), (33, 33, 13))  # false positive in the pancreas
    out = per_organ_lesion_scores(p, g, organs, (1, 1, 1))
    assert out["liver"].lesion_recall == 1.0 and out["liver"].lesion_localisation_score == pytest.approx(1.0)
    assert out["kidney"].lesion_recall == 0.0
    assert out["pancreas"].n_gt == 0 and out["pancreas"].n_pred == 1
    named = per_organ_lesion_scores(p, g, organs, (1, 1, 1), gt_organ={1: "pancreas", 2: "kidney_left"})
    assert named["pancreas"].n_gt == 1 and named["kidney"].n_gt == 1
