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


from lib.metrics.boxes import (  # noqa: E402
    box_size_mm,
    box_voxel_to_mm,
    box_world_to_voxel,
    giou_loss,
    giou_matrix,
    instance_boxes,
    paired_iou,
    to_corner_boxes,
)


def test_mask_to_box_2d_and_torch():
    m = torch.zeros(8, 8)
    m[3, 5] = 1
    np.testing.assert_array_equal(mask_to_box(m), [3, 5, 4, 6])  # one pixel -> (i, i+1)


def test_instance_boxes():
    inst = np.zeros((10, 10, 10), np.int32)
    inst[1:3, 1:3, 1:3] = 2
    inst[5:9, 0:1, 4:7] = 7
    ids, boxes = instance_boxes(inst)
    np.testing.assert_array_equal(ids, [2, 7])
    np.testing.assert_array_equal(boxes, [[1, 1, 1, 3, 3, 3], [5, 0, 4, 9, 1, 7]])
    ids0, boxes0 = instance_boxes(np.zeros((4, 4)))
    assert ids0.size == 0 and boxes0.shape == (0, 4)


def test_box_voxel_to_mm_with_spacing_and_origin_and_back():
    box = [0, 0, 0, 2, 3, 4]
    mm = box_voxel_to_mm(box, spacing=(2.0, 1.0, 5.0), origin=(10.0, 20.0, 30.0))
    # edges at origin + (e - 0.5) * spacing: lo = (9, 19.5, 27.5), hi = (10 + 1.5*2, 20 + 2.5, 30 + 3.5*5)
    np.testing.assert_allclose(mm, [9, 19.5, 27.5, 13, 22.5, 47.5])
    np.testing.assert_allclose(mm[3:] - mm[:3], box_size_mm(box, (2.0, 1.0, 5.0)))  # (4, 3, 20)
    affine = np.array([[-2.0, 0, 0, 100], [0, -2.0, 0, 50], [0, 0, 5.0, -20], [0, 0, 0, 1]])
    boxes = np.array([[1, 2, 3, 4, 6, 5], [0, 0, 0, 1, 1, 1]], float)
    np.testing.assert_allclose(box_world_to_voxel(box_voxel_to_world(boxes, affine), affine), boxes)
    # 2D with a 3x3 affine
    np.testing.assert_allclose(box_voxel_to_world([0, 0, 2, 1], np.diag([0.5, 2.0, 1.0])), [-0.25, -1, 0.75, 1])


def test_iou_giou_2d_by_hand():
    a, b = [[0, 0, 2, 2]], [[1, 1, 3, 3]]
    # IoU 1/7; enclosing box 3x3 = 9, union 7 -> GIoU = 1/7 - 2/9
    assert giou_matrix(a, b)[0, 0].item() == pytest.approx(1 / 7 - 2 / 9, abs=1e-6)
    # disjoint: IoU 0, enclosure 3, union 2 -> GIoU = -1/3
    assert giou_matrix([[0, 0, 1, 1]], [[2, 0, 3, 1]])[0, 0].item() == pytest.approx(-1 / 3, abs=1e-6)
    assert paired_giou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[0.0, 0, 2, 2]])).item() == pytest.approx(1.0)


def test_paired_iou_matches_the_matrix_diagonal_and_is_differentiable():
    a = torch.tensor([[0.0, 0, 0, 2, 2, 2], [0, 0, 0, 4, 1, 1], [0, 0, 0, 1, 1, 1]], requires_grad=True)
    b = torch.tensor([[1.0, 1, 1, 3, 3, 3], [2, 0, 0, 6, 1, 1], [5, 5, 5, 6, 6, 6]])
    iou = paired_iou(a, b)
    np.testing.assert_allclose(iou.detach().numpy(), [1 / 15, 2 / 6, 0.0], atol=1e-6)
    np.testing.assert_allclose(iou.detach().numpy(), torch.diagonal(iou_matrix(a.detach(), b)).numpy(), atol=1e-6)
    iou.sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_giou_loss_by_hand_and_survives_inverted_boxes():
    target = torch.tensor([[1.0, 1, 1, 3, 3, 3]])
    pred = torch.tensor([[2.0, 2, 2, 0, 0, 0]], requires_grad=True)  # corners swapped: box (0..2)^3
    loss = giou_loss(pred, target)
    assert loss.item() == pytest.approx(1 - (1 / 15 - 12 / 27), abs=1e-5)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert giou_loss(target, target, reduction="none").shape == (1,)


def test_centre_size_boxes_convert_to_corners():
    c = to_corner_boxes(torch.tensor([[5.0, 5.0, 5.0, 2.0, 4.0, 6.0]]), mode="cccwhd")
    np.testing.assert_allclose(c.numpy(), [[4, 3, 2, 6, 7, 8]])
