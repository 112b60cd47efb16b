"""Eq. 2 matching (scipy Hungarian) and eqs. 3-4 losses, checked against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.networks.medgrounder import GroundingLoss, HungarianMatcher, MedGrounderConfig, select_boxes
from lib.networks.medgrounder.matcher import matching_cost


def test_matcher_assigns_each_target_its_nearest_query():
    boxes = torch.tensor([[[0.2, 0.2, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1], [0.5, 0.5, 0.3, 0.3]]])
    logits = torch.zeros(1, 3)
    tgt = [torch.tensor([[0.79, 0.81, 0.1, 0.1], [0.21, 0.2, 0.1, 0.1]])]
    (q, t), = HungarianMatcher()(logits, boxes, tgt)
    assert dict(zip(t.tolist(), q.tolist())) == {0: 1, 1: 0}


def test_matcher_prefers_the_confident_query_when_boxes_tie():
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]]])
    logits = torch.tensor([[-3.0, 3.0]])
    (q, _), = HungarianMatcher()(logits, boxes, [torch.tensor([[0.5, 0.5, 0.2, 0.2]])])
    assert q.tolist() == [1]


def test_zero_box_sentence_matches_nothing():
    (q, t), = HungarianMatcher()(torch.zeros(1, 4), torch.rand(1, 4, 6), [torch.zeros(0, 6)])
    assert q.numel() == 0 and t.numel() == 0


def test_matching_cost_terms():
    logits = torch.tensor([0.0])
    b = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    same = matching_cost(logits, b, b, 1.0, 5.0, 2.0)
    # p = 0.5, L1 = 0, GIoU = 1  ->  -0.5 + 0 - 2
    assert float(same) == pytest.approx(-2.5, abs=1e-4)
    shifted = torch.tensor([[0.6, 0.5, 0.2, 0.2]])
    c = matching_cost(logits, b, shifted, 1.0, 5.0, 2.0)
    # L1 = 0.1; boxes [0.4,0.6] vs [0.5,0.7] in x: IoU = 0.1*0.2/(0.08-0.02) = 1/3, hull = union -> GIoU = 1/3
    assert float(c) == pytest.approx(-0.5 + 0.5 - 2.0 / 3.0, abs=1e-5)


def test_loss_values_and_weights():
    cfg = MedGrounderConfig.tiny()
    assert (cfg.loss_groundability, cfg.loss_l1, cfg.loss_giou) == (1.0, 5.0, 2.0)
    loss = GroundingLoss(cfg)
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.2, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]]])
    logits = torch.tensor([[2.0, -2.0]])
    out = {"pred_logits": logits, "pred_boxes": boxes}
    perfect = loss(out, [torch.tensor([[0.5, 0.5, 0.5, 0.2, 0.2, 0.2]])])
    bce = -(np.log(1 / (1 + np.exp(-2))) + np.log(1 - 1 / (1 + np.exp(2)))) / 2
    assert float(perfect["groundability"]) == pytest.approx(bce, rel=1e-5)
    assert float(perfect["l1"]) == pytest.approx(0.0, abs=1e-6) and float(perfect["giou"]) == pytest.approx(0.0, abs=1e-4)
    assert float(perfect["total"]) == pytest.approx(bce, abs=1e-3)
    none = loss(out, [torch.zeros(0, 6)])  # zero-box sentence: every query's target is 0
    bce0 = -(np.log(1 - 1 / (1 + np.exp(-2))) + np.log(1 - 1 / (1 + np.exp(2)))) / 2
    assert float(none["total"]) == pytest.approx(bce0, rel=1e-5)
    shifted = loss(out, [torch.tensor([[0.6, 0.5, 0.5, 0.2, 0.2, 0.2]])])
    assert float(shifted["l1"]) == pytest.approx(0.1, rel=1e-4)
    assert float(shifted["giou"]) == pytest.approx(1 - 1 / 3, rel=1e-4)  # 3D GIoU: overlap 0.1 of 0.2 along x


def test_unmatched_queries_are_down_weighted_as_detr_no_object():
    """Groundability BCE: matched queries weigh 1, unmatched ones ``loss_noobject_weight`` (DETR's
    eos_coef 0.1), normalised by the weights: one positive among many negatives still counts."""
    cfg = MedGrounderConfig.tiny()
    assert cfg.loss_noobject_weight == 0.1
    boxes = torch.tensor([[[0.5, 0.5, 0.5, 0.2, 0.2, 0.2]] + [[0.1, 0.1, 0.1, 0.1, 0.1, 0.1]] * 7])
    logits = torch.tensor([[-1.0] + [-3.0] * 7])
    out = {"pred_logits": logits, "pred_boxes": boxes}
    target = [torch.tensor([[0.5, 0.5, 0.5, 0.2, 0.2, 0.2]])]
    pos, neg = -np.log(1 / (1 + np.exp(1.0))), -np.log(1 - 1 / (1 + np.exp(3.0)))
    for w in (0.1, 1.0):
        got = float(GroundingLoss(MedGrounderConfig.tiny(loss_noobject_weight=w))(out, target)["groundability"])
        assert got == pytest.approx((pos + 7 * w * neg) / (1 + 7 * w), rel=1e-5)
    # so a matched query's gradient is larger, relative to the negatives', with the weight
    grads = []
    for w in (0.1, 1.0):
        lg = logits.clone().requires_grad_(True)
        GroundingLoss(MedGrounderConfig.tiny(loss_noobject_weight=w, aux_loss=False)).single({"pred_logits": lg, "pred_boxes": boxes}, target)["total"].backward()
        grads.append(abs(float(lg.grad[0, 0])) / abs(float(lg.grad[0, 1])))
    assert grads[0] > 5 * grads[1]


def test_loss_is_differentiable_and_aux_layers_add():
    cfg = MedGrounderConfig.tiny()
    loss = GroundingLoss(cfg)
    b = torch.rand(2, 3, 6, requires_grad=True)
    lg = torch.zeros(2, 3, requires_grad=True)
    tg = [torch.tensor([[0.5, 0.5, 0.5, 0.2, 0.2, 0.2]]), torch.zeros(0, 6)]
    base = loss({"pred_logits": lg, "pred_boxes": b}, tg)["total"]
    with_aux = loss({"pred_logits": lg, "pred_boxes": b, "aux_outputs": [{"pred_logits": lg, "pred_boxes": b}]}, tg)["total"]
    assert float(with_aux) == pytest.approx(2 * float(base), rel=1e-5)
    with_aux.backward()
    assert b.grad.abs().sum() > 0 and lg.grad.abs().sum() > 0


def test_threshold_and_weighted_box_fusion():
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.11, 0.1, 0.31, 0.3], [0.6, 0.6, 0.8, 0.8], [0.5, 0.5, 0.9, 0.9]])
    scores = np.array([0.9, 0.85, 0.95, 0.3])
    b, s = select_boxes(boxes, scores, 0.8)
    assert len(b) == 3 and s[0] == pytest.approx(0.95)
    fused, fs = select_boxes(boxes, scores, 0.8, wbf=True, wbf_iou=0.1)
    assert len(fused) == 2  # the two overlapping boxes fuse, the far one stays
    near = fused[np.argmin(fused[:, 0])]
    assert near[0] == pytest.approx((0.1 * 0.9 + 0.11 * 0.85) / 1.75, abs=1e-3)
    b3 = np.array([[0.1, 0.1, 0.1, 0.3, 0.3, 0.3], [0.12, 0.1, 0.1, 0.32, 0.3, 0.3]])
    f3, _ = select_boxes(b3, np.array([0.9, 0.9]), 0.5, wbf=True)
    assert f3.shape == (1, 6)
    none, _ = select_boxes(boxes, scores, 0.99)
    assert none.shape == (0, 4)
