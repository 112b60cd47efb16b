"""Box helpers: mask -> box convention, world coordinates, IoU/GIoU values by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.metrics.boxes import box_voxel_to_world, iou_matrix, mask_to_box, paired_giou


def test_mask_to_box_is_upper_exclusive():
    m = np.zeros((10, 10, 10), bool)
    m[2:5, 3:4, 6:9] = True
    np.testing.assert_array_equal(mask_to_box(m), [2, 3, 6, 5, 4, 9])
    assert mask_to_box(np.zeros((3, 3, 3))) is None


def test_box_to_world_with_flipped_axes():
    affine = np.array([[-2.0, 0, 0, 100], [0, -2.0, 0, 50], [0, 0, 5.0, -20], [0, 0, 0, 1]])
    w = box_voxel_to_world([0, 0, 0, 1, 1, 1], affine)  # one voxel centred at (100, 50, -20)
    np.testing.assert_allclose(w, [99, 49, -22.5, 101, 51, -17.5])


def test_iou_2d_and_3d_by_hand():
    assert iou_matrix([[0, 0, 2, 2]], [[1, 1, 3, 3]])[0, 0].item() == pytest.approx(1 / 7)
    assert iou_matrix([[0, 0, 0, 2, 2, 2]], [[1, 1, 1, 3, 3, 3]])[0, 0].item() == pytest.approx(1 / 15)


def test_giou_3d_by_hand_and_differentiable():
    a = torch.tensor([[0.0, 0, 0, 2, 2, 2]], requires_grad=True)
    b = torch.tensor([[1.0, 1, 1, 3, 3, 3]])
    g = paired_giou(a, b)
    # IoU 1/15; enclosing box 27, union 15 -> GIoU = 1/15 - (27 - 15)/27
    assert g.item() == pytest.approx(1 / 15 - 12 / 27, abs=1e-5)
    g.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
