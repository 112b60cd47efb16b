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


@pytest.mark.parametrize("axis,spacing,shift,expected", [(0, (3.0, 1.0, 1.0), 2, 6.0), (1, (1.0, 0.7, 2.0), 4, 2.8), (2, (0.8, 0.8, 5.0), 1, 5.0)])
def test_hd95_shift_along_each_axis_with_anisotropic_spacing(axis, spacing, shift, expected):
    a = _cube((30, 30, 30), (8, 8, 8), 8)
    b = np.roll(a, shift, axis=axis)
    assert hd95(a, b, spacing) == pytest.approx(expected, abs=1e-4)
    assert hd95(b, a, spacing) == pytest.approx(expected, abs=1e-4)  # symmetric


def test_torch_tensors_and_channel_first_inputs():
    import torch

    a = _cube((20, 20, 20), (2, 2, 2), 4)
    b = _cube((20, 20, 20), (2, 2, 3), 4)  # overlap 4*4*3 = 48
    ta, tb = torch.from_numpy(a).float()[None], torch.from_numpy(b).to(torch.uint8)  # (1, X, Y, Z) and (X, Y, Z)
    assert dice(ta, tb) == pytest.approx(2 * 48 / 128)
    assert hd95(ta, tb, (1.0, 1.0, 2.0)) == pytest.approx(2.0, abs=1e-4)


def test_dice_2d_by_hand():
    a = np.zeros((6, 6), bool)
    b = np.zeros((6, 6), bool)
    a[0:2, 0:3] = True  # 6 px
    b[1:3, 0:2] = True  # 4 px, overlap row 1 cols 0..1 = 2 px
    assert dice(a, b) == pytest.approx(2 * 2 / 10)


def test_hd95_one_empty_alternatives_and_validation():
    z = np.zeros((10, 10, 4), bool)
    one = _cube((10, 10, 4), (1, 1, 1), 2)
    assert math.isnan(hd95(z, one, 1.0, one_empty="nan"))
    assert hd95(one, z, 1.0, one_empty="inf") == math.inf
    assert hd95(z, z, 1.0, one_empty="nan") == 0.0  # both empty stays 0
    with pytest.raises(ValueError):
        hd95(one, one, (1.0, 1.0))  # spacing of the wrong length
    with pytest.raises(ValueError):
        dice(one, np.zeros((10, 10, 5), bool))
