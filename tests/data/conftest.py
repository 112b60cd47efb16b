"""Shared, cached synthetic studies for the data tests (generated once per session)."""
from __future__ import annotations

import functools

import pytest

from lib.data.synthetic.study import generate_study

#: Seeds used by the statistical tests (tiny preset: ~0.1 s each).
STAT_SEEDS = tuple(range(0, 60))


@functools.lru_cache(maxsize=None)
def study(seed: int, preset: str = "tiny"):
    return generate_study(seed, preset)


@pytest.fixture(scope="session")
def tiny_studies():
    return [study(s, "tiny") for s in STAT_SEEDS]


@pytest.fixture(scope="session")
def small_studies():
    return [study(s, "small") for s in range(0, 16)]
