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


# ---------------------------------------------------------------- more worked examples

from lib.metrics.lesion import lesion_instances, lesion_localisation_score, lesion_recall, per_organ_lesion_metrics  # noqa: E402


def test_brief_example_b_ten_mm_shift_at_two_mm_spacing():
    """3 GT cubes of 10^3; one found exactly, one shifted 5 voxels along axis 0 at 2 mm = 10 mm
    (overlap 5*10*10 = 500 -> Dice 2*500/2000 = 0.5), one missed."""
    shape = (60, 40, 20)
    g, p = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    _box(g, (0, 0, 0), (10, 10, 10))
    _box(g, (20, 20, 5), (30, 30, 15))
    _box(g, (45, 0, 8), (55, 10, 18))
    _box(p, (0, 0, 0), (10, 10, 10))
    _box(p, (25, 20, 5), (35, 30, 15))
    spacing = (2.0, 0.8, 0.8)
    s = match_lesions(p, g, spacing)
    assert (s.N_gt, s.N_pred, s.N_matched) == (3, 2, 2)
    by_gt = {m.gt_id: m for m in s.matches}
    assert by_gt[2].dice == pytest.approx(0.5) and by_gt[2].distance_mm == pytest.approx(10.0)
    assert by_gt[1].dice == pytest.approx(1.0) and by_gt[1].distance_mm == pytest.approx(0.0)
    assert s.LR == pytest.approx(2 / 3)
    expected = (1.0 + 0.5 * math.exp(-10 / 20)) / 3  # = (1 + 0.5 * 0.60653) / 3 = 0.43442
    assert s.LLS == pytest.approx(expected) and expected == pytest.approx(0.434422, abs=1e-6)
    assert lesion_recall(p, g, spacing) == pytest.approx(2 / 3)
    assert lesion_localisation_score(p, g, spacing) == pytest.approx(expected)
    # d0 is a parameter: a 10 mm decay scale gives exp(-1) for the shifted lesion
    assert lesion_localisation_score(p, g, spacing, d0_mm=10.0) == pytest.approx((1.0 + 0.5 * math.exp(-1)) / 3)
    assert s.false_positives == 0 and s.false_negatives == 1 and s.unmatched_gt_ids == [3]


def test_threshold_applies_before_the_assignment():
    """Raw-matrix Hungarian would pick GT1-P2 (12/131) + GT2-P1 (1/11) = 0.1825 over GT1-P1 (1/6),
    then drop both as < 0.1 and report no match; the eligible-only assignment keeps GT1-P1."""
    g, p = np.zeros((40, 10, 10), np.uint8), np.zeros((40, 10, 10), np.uint8)
    g[0:10] = 1  # GT1: 1000 voxels
    g[10:30] = 2  # GT2: 2000 voxels, touching GT1 (kept apart by instances="labels")
    p[9:11] = 1  # P1: 200 voxels, 100 in GT1 (Dice 200/1200 = 1/6), 100 in GT2 (200/2200 = 1/11)
    p[0:3, 0:4, 0:4] = 2  # P2: 48 voxels inside GT1 (Dice 96/1048 = 12/131)
    s = match_lesions(p, g, (1, 1, 1), gt_instances="labels", pred_instances="labels")
    assert [(m.gt_id, m.pred_id) for m in s.matches] == [(1, 1)]
    assert s.matches[0].dice == pytest.approx(1 / 6)
    assert s.matches[0].distance_mm == pytest.approx(5.0)  # x centroids 4.5 vs 9.5
    assert s.LR == 0.5 and s.LLS == pytest.approx(1 / 6 * math.exp(-5 / 20) / 2)


def test_connectivity_and_instance_modes():
    m = np.zeros((5, 5, 5), np.uint8)
    m[1, 1, 1] = 1
    m[2, 2, 2] = 1  # corner neighbour of (1,1,1)
    m[2, 2, 3] = 1  # face neighbour of (2,2,2)
    assert lesion_instances(m)[1] == 1  # 26-connectivity by default
    assert lesion_instances(m, connectivity=26)[1] == 1
    assert lesion_instances(m, connectivity=18)[1] == 2
    assert lesion_instances(m, connectivity=6)[1] == 2
    assert lesion_instances(m, connectivity=1)[1] == 2
    inst = np.zeros((5, 5, 5), np.int16)
    inst[0:2] = 7
    inst[2:4] = 3  # touching the 7s
    lab, n = lesion_instances(inst, instances="labels")
    assert n == 2 and set(np.unique(lab)) == {0, 1, 2} and (lab[0] == 2).all()  # 3 -> 1, 7 -> 2
    assert lesion_instances(inst, instances="components")[1] == 1  # binarised: one blob
    with pytest.raises(ValueError):
        lesion_instances(m, connectivity=7)


def test_label_mode_reports_original_ids_and_accepts_tensors():
    import torch

    g = np.zeros(SHAPE, np.int32)
    _box(g, (2, 2, 2), (6, 6, 6), 5)
    _box(g, (20, 20, 2), (24, 24, 6), 9)
    p = torch.from_numpy((g > 0).astype(np.float32))
    s = match_lesions(p, torch.from_numpy(g), (1, 1, 1), gt_instances="labels")
    assert sorted(m.gt_id for m in s.matches) == [5, 9] and s.gt_ids == [5, 9]
    assert s.as_dict()["LR"] == 1.0


def test_one_gt_and_empty_prediction():
    g = _box(np.zeros(SHAPE, np.uint8), (2, 2, 2), (6, 6, 6))
    s = match_lesions(np.zeros(SHAPE, bool), g, (1, 1, 1))
    assert (s.LR, s.LLS, s.false_negatives, s.false_positives) == (0.0, 0.0, 1, 0)
    both_empty = match_lesions(np.zeros(SHAPE, bool), np.zeros(SHAPE, bool), (1, 1, 1))
    assert math.isnan(both_empty.LR) and both_empty.false_positives == 0


def test_many_lesions_are_matched_without_a_dense_matrix():
    """27 000 GT and 27 000 predicted lesions (a dense Dice matrix would hold 7.3e8 entries).
    GT: single voxels on a 3-voxel pitch (not 26-connected); prediction: each GT voxel plus its
    +x neighbour -> Dice 2*1/(1+2) = 2/3, centroid shift half a voxel = 0.25 mm at 0.5 mm."""
    g = np.zeros((90, 90, 90), np.uint8)
    idx = np.arange(0, 90, 3)
    g[np.ix_(idx, idx, idx)] = 1
    p = g | np.roll(g, 1, axis=0)
    s = match_lesions(p, g, (0.5, 1.0, 1.0))
    assert s.n_gt == s.n_pred == s.n_matched == 27000
    assert np.allclose([m.dice for m in s.matches], 2 / 3)
    assert np.allclose([m.distance_mm for m in s.matches], 0.25)
    assert s.LLS == pytest.approx(2 / 3 * math.exp(-0.25 / 20))


def test_per_organ_with_a_lesion_organ_dict_only_and_matched_prediction_follows_its_gt():
    g = np.zeros(SHAPE, np.uint8)
    _box(g, (2, 2, 2), (6, 6, 6), 1)
    _box(g, (20, 20, 2), (24, 24, 6), 2)
    _box(g, (30, 2, 10), (34, 6, 14), 3)
    p = np.zeros(SHAPE, np.uint8)
    _box(p, (2, 2, 2), (6, 6, 6))  # finds lesion 1
    _box(p, (20, 20, 3), (24, 24, 7))  # finds lesion 2 (Dice 0.75, shift 1 voxel)
    _box(p, (10, 30, 10), (12, 32, 12))  # unmatched; no organ map -> 'other'
    out = per_organ_lesion_metrics(p, g, {1: "liver", 2: "kidney_left", 3: "kidney_right"}, (1, 1, 2))
    assert set(out) == {"liver", "kidney", "other"}
    assert out["kidney"].n_gt == 2 and out["kidney"].LR == 0.5
    assert out["kidney"].LLS == pytest.approx(0.75 * math.exp(-2 / 20) / 2)
    assert out["other"].n_gt == 0 and out["other"].n_pred == 1 and math.isnan(out["other"].LR)
    assert out["liver"].LLS == pytest.approx(1.0)


def test_per_organ_prediction_matched_in_another_organ_and_unmatched_in_left_kidney():
    organs = np.zeros(SHAPE, np.uint8)
    organs[:15] = 1  # liver
    organs[15:28] = 4  # left kidney
    g = np.zeros(SHAPE, np.uint8)
    _box(g, (11, 2, 2), (17, 6, 6), 1)  # 4 rows in liver, 2 in kidney -> liver by majority
    p = np.zeros(SHAPE, np.uint8)
    _box(p, (13, 2, 2), (19, 6, 6))  # overlaps lesion 1 by 4/6 (Dice 2/3), centroid at x=15.5 in kidney
    _box(p, (20, 20, 10), (23, 23, 13))  # unmatched, centroid in the left kidney
    out = per_organ_lesion_metrics(p, g, organs, (1, 1, 1))
    assert out["liver"].n_gt == 1 and out["liver"].n_matched == 1 and out["liver"].n_pred == 1
    assert out["liver"].matches[0].dice == pytest.approx(2 / 3)
    assert out["kidney"].n_gt == 0 and out["kidney"].n_pred == 1 and out["kidney"].false_positives == 1
    # the report's organ overrides the map
    named = per_organ_lesion_metrics(p, g, organs, (1, 1, 1), gt_organ={1: "kidney_left"})
    assert named["kidney"].n_gt == 1 and named["kidney"].n_pred == 2 and "liver" not in named


def test_aggregate_per_organ():
    from lib.metrics.lesion import aggregate_per_organ

    organs = np.zeros(SHAPE, np.uint8)
    organs[:15] = 1
    organs[15:] = 5
    g = np.zeros(SHAPE, np.uint8)
    _box(g, (2, 2, 2), (6, 6, 6), 1)
    _box(g, (20, 20, 2), (24, 24, 6), 2)
    study_a = per_organ_lesion_metrics(g > 0, g, organs, (1, 1, 1))  # both found
    study_b = per_organ_lesion_metrics(np.zeros(SHAPE, bool), g, organs, (1, 1, 1))  # none found
    agg = aggregate_per_organ([study_a, study_b])
    assert agg["liver"]["LR_micro"] == 0.5 and agg["pancreas"]["n_gt"] == 2 and agg["pancreas"]["LR_macro"] == 0.5
