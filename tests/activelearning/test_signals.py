"""The score arithmetic: bounds, monotonicity and the 'cannot ground' cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lib.activelearning import signals


def test_normalised_entropy_spans_zero_to_one():
    assert signals.normalised_entropy(None, 0) == 1.0  # no candidate: nothing to be sure of
    assert signals.normalised_entropy(0.0, 1) == 0.0
    assert signals.normalised_entropy(math.log(3), 3) == pytest.approx(1.0)
    assert signals.normalised_entropy(0.5 * math.log(3), 3) == pytest.approx(0.5)
    assert signals.normalised_entropy(10.0, 2) == 1.0  # clipped


def test_lesion_uncertainty_mixes_entropy_and_tta():
    sure = {"grounded": True, "candidate_entropy": 0.0, "n_candidates": 3, "tta_disagreement": 0.0}
    torn = {"grounded": True, "candidate_entropy": math.log(3), "n_candidates": 3, "tta_disagreement": 0.6}
    assert signals.lesion_uncertainty(sure) == 0.0
    assert signals.lesion_uncertainty(torn, entropy_weight=0.5) == pytest.approx(0.8)
    assert signals.lesion_uncertainty(torn, entropy_weight=1.0) == pytest.approx(1.0)
    assert signals.lesion_uncertainty({"grounded": False}) == 1.0
    no_tta = {"grounded": True, "candidate_entropy": 0.5 * math.log(2), "n_candidates": 2}
    assert signals.lesion_uncertainty(no_tta) == pytest.approx(0.5)
    assert signals.study_uncertainty([sure, torn]) == pytest.approx(0.4)
    assert signals.study_uncertainty([]) is None


def test_volume_and_hu_inconsistency():
    assert signals.volume_inconsistency(10.0, 10.0) == 0.0
    assert signals.volume_inconsistency(5.0, 10.0) == pytest.approx(0.5)
    assert signals.volume_inconsistency(20.0, 10.0) == pytest.approx(0.5)
    assert signals.volume_inconsistency(0.0, 10.0) == 1.0
    assert signals.volume_inconsistency(3.0, None) is None
    assert signals.hu_inconsistency(5.0, (0.0, 20.0)) == 0.0  # inside the interval
    assert signals.hu_inconsistency(40.0, (0.0, 20.0)) == pytest.approx(1.0)  # 20 HU beyond, scale 20
    assert signals.hu_inconsistency(110.0, (100.0, 100.0)) == pytest.approx(0.1)
    assert signals.hu_inconsistency(None, (0.0, 20.0)) == 1.0
    assert signals.hu_inconsistency(30.0, None) is None


def test_study_inconsistency_counts_and_averages_available_terms():
    good = {"reported_count": 1, "grounded_count": 1, "measured_volume_ml": 10.0, "reported_volume_ml": 10.0, "measured_hu": 10.0, "reported_hu_interval": [0, 20]}
    missed = {"reported_count": 2, "grounded_count": 0, "measured_volume_ml": 0.0, "reported_volume_ml": 4.0, "measured_hu": None, "reported_hu_interval": None}
    score, terms = signals.study_inconsistency([good])
    assert score == 0.0 and terms == {"count": 0.0, "volume": 0.0, "hu": 0.0}
    score, terms = signals.study_inconsistency([good, missed])
    assert terms["count"] == pytest.approx(2 / 3) and terms["volume"] == pytest.approx(0.5) and terms["hu"] == 0.0
    assert score == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    assert signals.study_inconsistency([])[0] is None


def test_mask_disagreement():
    a = np.zeros((4, 4, 4), bool)
    a[:2] = True
    b = np.zeros_like(a)
    b[1:3] = True
    assert signals.mask_disagreement([a, a]) == 0.0
    assert signals.mask_disagreement([a, b]) == pytest.approx(0.5)
    assert signals.mask_disagreement([a, ~a]) == 1.0
    assert signals.mask_disagreement([np.zeros_like(a), np.zeros_like(a)]) == 0.0  # both see nothing
    assert signals.mask_disagreement([a]) is None
