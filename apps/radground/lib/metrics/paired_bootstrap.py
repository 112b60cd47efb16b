"""Paired bootstrap over studies for "model A mentions more findings than model B".

Two report generators scored on the same few dozen studies differ by a handful of findings; a
micro-F1 difference alone cannot say whether that is more than the luck of which studies were
drawn. Resampling *studies* (both models' counts of a study together, ``scipy.stats.bootstrap``
with ``paired=True``) gives a confidence interval of the difference and the share of resamples
in which A is not ahead."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import bootstrap

#: per-study finding counts of one model: rows (tp, fp, fn)
Counts = Sequence[Sequence[int]]


def _micro_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def _statistic(name: str):
    def stat(tp_a, fp_a, fn_a, tp_b, fp_b, fn_b, axis=-1):
        a = [x.sum(axis=axis) for x in (tp_a, fp_a, fn_a)]
        b = [x.sum(axis=axis) for x in (tp_b, fp_b, fn_b)]
        if name == "tp":
            return a[0] - b[0]
        return _micro_f1(*a) - _micro_f1(*b)

    return stat


def paired_difference(counts_a: Counts, counts_b: Counts, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict[str, dict[str, float]]:
    """For ``tp`` (findings mentioned in their region) and ``f1`` (micro finding F1): the observed
    difference A - B, its percentile bootstrap interval over studies, and ``p_not_ahead``, the share
    of resamples where A - B <= 0."""
    a, b = np.asarray(counts_a, dtype=float), np.asarray(counts_b, dtype=float)
    if a.ndim != 2 or a.shape[1] != 3 or a.shape != b.shape:
        raise ValueError(f"per-study (tp, fp, fn) rows for both models on the same studies, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("a bootstrap over studies needs at least 2 studies")
    data = (*a.T, *b.T)
    out = {}
    for name in ("tp", "f1"):
        stat = _statistic(name)
        res = bootstrap(data, stat, paired=True, vectorized=True, n_resamples=n_resamples, confidence_level=confidence, method="percentile", random_state=np.random.default_rng(seed))
        dist = np.asarray(res.bootstrap_distribution)
        out[name] = {
            "difference": float(stat(*data)),
            "low": float(res.confidence_interval.low),
            "high": float(res.confidence_interval.high),
            "p_not_ahead": float(np.mean(dist <= 0)),
        }
    return out
