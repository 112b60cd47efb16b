"""lib.metrics.paired_bootstrap: the difference is the observed one, its interval comes from
resampling whole studies (both models together), and a lead that rests on one study is not called
certain."""
from __future__ import annotations

import numpy as np
import pytest

from lib.metrics.paired_bootstrap import paired_difference


def test_a_consistent_lead_has_an_interval_above_zero():
    a = [[1, 0, 0]] * 20 + [[0, 1, 1]] * 10
    b = [[0, 0, 1]] * 20 + [[0, 1, 1]] * 10
    d = paired_difference(a, b, n_resamples=500)
    assert d["tp"]["difference"] == 20
    assert d["f1"]["difference"] == pytest.approx(2 * 20 / (40 + 10 + 10) - 0.0)
    assert 0 < d["tp"]["low"] <= 20 <= d["tp"]["high"]
    assert d["tp"]["p_not_ahead"] == 0.0 and d["f1"]["p_not_ahead"] == 0.0


def test_a_lead_from_one_study_is_not_certain():
    """A ahead by 2 findings, both in one study of 30: a third of resamples or more leave that study out."""
    a = [[2, 0, 0]] + [[1, 1, 1]] * 29
    b = [[0, 0, 2]] + [[1, 1, 1]] * 29
    d = paired_difference(a, b, n_resamples=1000)
    assert d["tp"]["difference"] == 2
    assert d["tp"]["low"] <= 0
    assert 0.2 < d["tp"]["p_not_ahead"] < 0.5


def test_pairing_matters():
    """The same per-model totals, but A's hits and B's hits sit in the same studies or in different
    ones: the paired interval is narrower when the models move together."""
    rng = np.random.default_rng(3)
    hits = rng.integers(0, 4, size=40)
    a = np.stack([hits + 1, np.zeros(40, int), np.ones(40, int)], 1)
    b_together = np.stack([hits, np.zeros(40, int), np.ones(40, int) + 1], 1)
    b_apart = b_together[rng.permutation(40)]
    width = lambda d: d["tp"]["high"] - d["tp"]["low"]  # noqa: E731
    together, apart = paired_difference(a, b_together, n_resamples=1000), paired_difference(a, b_apart, n_resamples=1000)
    assert together["tp"]["difference"] == apart["tp"]["difference"] == 40
    assert width(together) < width(apart)


def test_the_same_seed_gives_the_same_interval():
    a = [[1, 0, 1], [0, 1, 0], [2, 0, 0], [0, 0, 1]]
    b = [[0, 0, 2], [0, 0, 0], [1, 1, 1], [1, 0, 0]]
    assert paired_difference(a, b, n_resamples=300, seed=5) == paired_difference(a, b, n_resamples=300, seed=5)


@pytest.mark.parametrize("a,b", [([[1, 0, 0]], [[0, 0, 1]]), ([[1, 0, 0], [1, 0, 0]], [[0, 0, 1]]), ([[1, 0], [1, 0]], [[0, 1], [0, 1]])])
def test_bad_shapes_are_refused(a, b):
    with pytest.raises(ValueError):
        paired_difference(a, b)
