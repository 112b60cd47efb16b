"""000 eqs. 5, 7, 8: unimodality, report consistency, separation, segmentation, total."""
from __future__ import annotations

import math

import pytest
import torch
from monai.losses import DiceCELoss

from lib.networks.gleve.losses import (
    LossWeights,
    attribute_loss,
    organ_loss,
    pseudo_target_loss,
    relative_error_sq,
    report_consistent_candidate,
    seg_loss,
    separation_loss,
    total_loss,
    uniqueness_loss,
    weak_loss,
)
from lib.networks.gleve.report_graph import LesionTarget

VOX_ML = 0.001


def test_uniqueness_minimal_for_one_hot_scores():
    one_hot = uniqueness_loss([torch.tensor([20.0, 0.0, 0.0])], tau=0.5)
    flat = uniqueness_loss([torch.tensor([1.0, 1.0, 1.0])], tau=0.5)
    mid = uniqueness_loss([torch.tensor([1.0, 0.5, 0.0])], tau=0.5)
    assert one_hot.item() < 1e-6 and flat.item() == pytest.approx(math.log(3), rel=1e-5)
    assert one_hot < mid < flat
    both = uniqueness_loss([torch.tensor([1.0, 1.0]), None, torch.tensor([1.0, 1.0])], tau=1.0)
    assert both.item() == pytest.approx(2 * math.log(2), rel=1e-5)  # summed over lesions
    assert uniqueness_loss([None]).item() == 0.0


def test_relative_error_with_intervals():
    assert relative_error_sq(torch.tensor(2.0), 1.0, 1.0).item() == pytest.approx(1.0, rel=1e-5)
    assert relative_error_sq(torch.tensor(5.0), 0.0, 10.0).item() == 0.0  # inside the interval
    assert relative_error_sq(torch.tensor(-60.0), -10.0, 20.0, floor=20.0).item() == pytest.approx((50 / 20) ** 2, rel=1e-5)
    assert relative_error_sq(torch.tensor(150.0), 0.0, 100.0, floor=20.0).item() == pytest.approx(0.25, rel=1e-5)
    assert relative_error_sq(torch.tensor(4.0), 1.0, 1.0, delta=1.0).item() == pytest.approx(5.0, rel=1e-5)  # Huber beyond 1
    assert relative_error_sq(torch.tensor(1.5), 1.0, 1.0, delta=1.0).item() == pytest.approx(0.25, rel=1e-5)


def _scene(match: bool):
    """One lesion reported as 27 voxels at 10 HU in an organ occupying x < 8."""
    hu = torch.full((16, 16, 16), 60.0)
    organ = torch.zeros(1, 16, 16, 16, dtype=torch.bool)
    organ[0, :8] = True
    probs = torch.zeros(1, 16, 16, 16)
    if match:
        probs[0, 2:5, 2:5, 2:5] = 1.0
        hu[2:5, 2:5, 2:5] = 10.0
    else:
        probs[0, 6:12, 2:5, 2:5] = 1.0  # 54 voxels, 4 of 6 slices outside the organ, at 60 HU
    target = LesionTarget(organ="liver", volume_ml=27 * VOX_ML, hu=10.0)
    return probs, organ, hu, target


def test_weak_loss_small_when_prediction_matches_report():
    w = LossWeights()
    probs, organ, hu, t = _scene(True)
    good, parts = weak_loss(probs, [torch.tensor([5.0, 0.0])], [t], organ, [60.0], hu, VOX_ML, weights=w)
    assert parts["attr"].item() < 1e-6 and parts["org"].item() < 1e-6 and parts["sep"].item() == 0.0
    probs, organ, hu, t = _scene(False)
    bad, parts = weak_loss(probs, [torch.tensor([5.0, 0.0])], [t], organ, [60.0], hu, VOX_ML, weights=w)
    # V = 2 V_r: relative error 1; HU 60 vs 10: 50 / max(10, hu_floor=20) = 2.5 -> Huber 2 * 2.5 - 1
    assert parts["attr"].item() == pytest.approx(1.0 + 4.0, rel=1e-4)
    paper = LossWeights(attr_delta=None)  # the paper's pure squares
    _, parts = weak_loss(probs, [None], [t], organ, [60.0], hu, VOX_ML, weights=paper)
    assert parts["attr"].item() == pytest.approx(1.0 + 2.5**2, rel=1e-4)
    assert parts["org"].item() == pytest.approx(2 / 3, rel=1e-4)
    assert bad > good + 1.0


def test_response_consistency_prefers_the_reported_blob_and_moves_the_response_toward_it():
    """L_con on the response map: a response peaked on the reported blob (in the organ, the reported
    volume and HU) scores lower than one peaked on a wrong blob, and its gradient raises the
    response on the reported blob while lowering it outside the organ."""
    w = LossWeights(resp_temperature=0.1, lambda_weak_response=1.0)

    def response_consistency_loss(responses, targets, organ, organ_hu, hu, voxel_ml, weights):
        probs = torch.zeros_like(responses)  # no refined mask: only the response term counts
        return weak_loss(probs, [None] * len(targets), targets, organ, organ_hu, hu, voxel_ml, weights=weights, responses=responses)[1]["con_response"]

    _, organ, hu, t = _scene(True)  # the true blob: 27 voxels at 10 HU in x 2:5
    right = torch.full((1, 16, 16, 16), -1.0)
    right[0, 2:5, 2:5, 2:5] = 1.0
    wrong = torch.full((1, 16, 16, 16), -1.0)
    wrong[0, 9:12, 2:5, 2:5] = 1.0  # same size, outside the organ, at 60 HU
    good = response_consistency_loss(right, [t], organ, [60.0], hu, VOX_ML, weights=w)
    bad = response_consistency_loss(wrong, [t], organ, [60.0], hu, VOX_ML, weights=w)
    assert good.item() < 0.01 and bad.item() > 1.0
    flat = torch.zeros(1, 16, 16, 16, requires_grad=True)  # undecided: the same response everywhere
    response_consistency_loss(flat, [t], organ, [60.0], hu, VOX_ML, weights=w).backward()
    g = -flat.grad[0]  # descent direction
    assert g[2:5, 2:5, 2:5].mean() > g[:8].mean() > g[8:].mean()  # blob > rest of the organ > outside
    assert response_consistency_loss(right[:0], [], organ[:0], [], hu, VOX_ML, weights=w).item() == 0.0


def test_report_consistent_candidate_is_the_unique_one_agreeing_with_the_report():
    # xi columns: organ overlap, volume agreement, HU agreement, has volume, has HU
    ev = torch.tensor([[0.9, 0.8, 0.9, 1, 1], [0.2, 0.9, 0.9, 1, 1], [0.9, 0.1, 0.9, 1, 1]])
    assert report_consistent_candidate(ev) == 0
    assert report_consistent_candidate(torch.cat([ev, ev[:1]])) is None  # two agree: ambiguous
    assert report_consistent_candidate(ev[1:]) is None  # none agrees
    no_hu = torch.tensor([[0.9, 0.8, 0.0, 1, 0], [0.9, 0.1, 0.0, 1, 0]])
    assert report_consistent_candidate(no_hu) == 0  # a fact the report does not give is not checked
    assert report_consistent_candidate(torch.tensor([[0.9, 0.0, 0.0, 0, 0]])) is None  # nothing to check


def test_pseudo_target_loss_trains_response_and_verifier_toward_that_candidate():
    from types import SimpleNamespace

    blob = torch.zeros(8, 8, 8, dtype=torch.bool)
    blob[1:3, 1:3, 1:3] = True
    other = torch.zeros(8, 8, 8, dtype=torch.bool)
    other[5:7, 5:7, 5:7] = True
    response = torch.zeros(8, 8, 8, requires_grad=True)
    scores = torch.zeros(2, requires_grad=True)
    ver = SimpleNamespace(scores=scores, evidence=torch.tensor([[0.1, 0.9, 0.9, 1, 1], [0.9, 0.9, 0.9, 1, 1]]))
    les = SimpleNamespace(verification=ver, response=response, candidates=[SimpleNamespace(mask=blob), SimpleNamespace(mask=other)])
    loss = pseudo_target_loss([les, SimpleNamespace(verification=None)], LossWeights())
    loss.backward()
    assert loss.item() > 0
    assert response.grad[other].mean() < 0 < response.grad[blob].mean()  # descent raises the response on candidate 1 only
    assert scores.grad[1] < 0 < scores.grad[0]
    ver.evidence = torch.tensor([[0.9, 0.9, 0.9, 1, 1], [0.9, 0.9, 0.9, 1, 1]])  # ambiguous: no term
    assert pseudo_target_loss([les], LossWeights()).item() == 0.0


def test_attribute_loss_skips_missing_values():
    vol = torch.tensor([0.054, 0.054])
    t = [LesionTarget(organ="liver"), LesionTarget(organ="liver", volume_ml=0.027)]
    assert attribute_loss(vol, None, t, [None, None]).item() == pytest.approx(1.0, rel=1e-4)
    assert attribute_loss(vol, None, t, [None, None], valid=torch.tensor([True, False])).item() == 0.0
    assert attribute_loss(vol * 100, None, t, [None, None]).item() == pytest.approx(199.0**2, rel=1e-4)
    assert attribute_loss(vol * 100, None, t, [None, None], delta=1.0).item() == pytest.approx(2 * 199.0 - 1, rel=1e-4)
    assert attribute_loss(vol * 100, None, t, [None, None], log_volume=True).item() == pytest.approx(math.log(200.0) ** 2, rel=1e-4)
    assert attribute_loss(vol / 2, None, t, [None, None], log_volume=True).item() == pytest.approx(0.0, abs=1e-6)
    rel = [LesionTarget(organ="liver", hu_range=(-200.0, -15.0), hu_relative=True)]
    mu = torch.tensor([50.0])
    assert attribute_loss(vol[:1], mu, rel, [None]).item() == 0.0  # organ mean unknown: no HU target
    assert attribute_loss(vol[:1], mu, rel, [60.0]).item() == pytest.approx((5 / 45) ** 2, rel=1e-4)


def test_organ_and_separation_losses():
    p = torch.zeros(3, 4, 4, 4)
    p[0, :2] = 1.0
    p[1, :2] = 1.0  # identical to lesion 0
    p[2, 3] = 1.0  # disjoint
    organ = torch.zeros(3, 4, 4, 4)
    organ[:, :1] = 1.0
    assert organ_loss(p[:1], organ[:1]).item() == pytest.approx(0.5, rel=1e-5)
    assert separation_loss(p[[0, 2]]).item() == pytest.approx(0.0)
    assert separation_loss(p).item() == pytest.approx(1.0, rel=1e-5)  # one fully overlapping pair
    assert separation_loss(p, valid=torch.tensor([True, False, True])).item() == pytest.approx(0.0)
    assert separation_loss(p[:1]).item() == 0.0


def test_seg_loss_is_monai_dice_ce_and_total_respects_delta():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 6, 6)
    target = (torch.rand(2, 6, 6, 6) > 0.7).float()
    ref = DiceCELoss(sigmoid=True)(logits.unsqueeze(1), target.unsqueeze(1))
    assert seg_loss(logits, target).item() == pytest.approx(ref.item(), rel=1e-6)
    assert seg_loss(target * 20 - 10, target) < seg_loss(-(target * 20 - 10), target)
    w = LossWeights(lambda_seg=2.0, lambda_weak=0.5)
    assert total_loss(torch.tensor(1.0), torch.tensor(4.0), True, w).item() == 4.0
    assert total_loss(torch.tensor(1.0), torch.tensor(4.0), False, w).item() == 2.0


def test_loss_weights_from_dict():
    assert LossWeights.from_dict({"tau": 0.2}).tau == 0.2
    with pytest.raises(ValueError):
        LossWeights.from_dict({"lambda_foo": 1.0})
