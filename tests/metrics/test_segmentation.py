"""Dice and HD95 against hand-computed answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lib.metrics.segmentation import dice, hd95, image_diagonal_mm


def _cube(shape, lo, size):
    m = np.zeros(shape, bool)
    m[lo[0] : lo[0] + size, lo[1] : lo[1] + size, lo[2] : lo[2] + size] = True
    return m


def test_dice_of_overlapping_cubes():
    a = _cube((20, 20, 20), (2, 2, 2), 4)  # 64 voxels
    b = _cube((20, 20, 20), (4, 2, 2), 4)  # shifted by 2 along x: overlap 2*4*4 = 32
    assert dice(a, b) == pytest.approx(2 * 32 / (64 + 64))


def test_dice_edge_cases():
    z = np.zeros((5, 5, 5), bool)
    assert dice(z, z) == 1.0
    assert dice(z, _cube((5, 5, 5), (0, 0, 0), 2)) == 0.0


def test_hd95_of_shifted_cube_is_the_shift_in_mm():
    a = _cube((30, 30, 30), (5, 5, 5), 8)
    b = _cube((30, 30, 30), (5, 5, 8), 8)  # 3 voxels along z
    assert hd95(a, b, spacing=(1.0, 1.0, 2.5)) == pytest.approx(7.5, abs=1e-4)
    assert hd95(a, b, spacing=(1.0, 1.0, 1.0)) == pytest.approx(3.0, abs=1e-4)


def test_hd95_edge_cases():
    z = np.zeros((10, 10, 4), bool)
    assert hd95(z, z, (1, 1, 1)) == 0.0
    one = _cube((10, 10, 4), (1, 1, 1), 2)
    assert hd95(one, z, (2.0, 2.0, 5.0)) == pytest.approx(math.sqrt(20**2 + 20**2 + 20**2))
    assert image_diagonal_mm((10, 10, 4), (2, 2, 5)) == pytest.approx(math.sqrt(1200))
