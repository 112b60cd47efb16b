"""Fixtures of the GLeVE model tests."""
from __future__ import annotations

import pytest

from .synthetic import make_scene


@pytest.fixture(scope="module")
def scene():
    return make_scene()
