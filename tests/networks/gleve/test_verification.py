"""000 eq. 4 region verification: evidence vectors and the candidate choice."""
from __future__ import annotations

import math

import pytest
import torch

from lib.networks.gleve.report_graph import DENSITY_HU, LesionTarget
from lib.networks.gleve.verification import (
    EVIDENCE_NAMES,
    RegionVerifier,
    evidence_vectors,
    masked_pool,
    organ_mean_hu,
    region_statistics,
)

VOX_ML = 0.001  # 1 mm^3 voxels


def _scene():
    organ = torch.zeros(16, 16, 16)
    organ[:8] = 1.0
    hu = torch.full((16, 16, 16), 60.0)
    masks = torch.zeros(4, 16, 16, 16, dtype=torch.bool)
    masks[0, 1:4, 1:4, 1:4] = True  # A: in organ, 27 voxels, hypodense
    masks[1, 10:13, 1:4, 1:4] = True  # B: outside the organ
    masks[2, 2:7, 6:11, 6:11] = True  # C: 125 voxels, wrong volume
    masks[3, 4:7, 12:15, 1:4] = True  # D: in organ, right volume, organ-like HU
    hu[masks[0] | masks[1] | masks[2]] = 10.0
    lo, hi, rel = DENSITY_HU["hypodense"]
    target = LesionTarget(organ="liver", volume_ml=27 * VOX_ML, hu_range=(lo, hi), hu_relative=rel)
    return organ, hu, masks, target


def test_evidence_values():
    organ, hu, masks, target = _scene()
    mean = organ_mean_hu(hu, organ > 0.5)
    xi = evidence_vectors(masks, target, organ, hu, VOX_ML, mean, sigma_hu=20.0)
    assert xi.shape == (4, len(EVIDENCE_NAMES))
    assert xi[:, 0].tolist() == [1.0, 0.0, 1.0, 1.0]  # organ overlap
    assert xi[0, 1] == pytest.approx(1.0) and xi[2, 1] == pytest.approx(27 / 125)  # volume agreement
    d = 60.0 - (mean + DENSITY_HU["hypodense"][1])  # D's distance above the hypodense interval
    assert xi[0, 2] == pytest.approx(1.0) and xi[3, 2] == pytest.approx(math.exp(-d / 20.0), rel=1e-4)
    assert (xi[:, 3:] == 1.0).all()  # both reported
    vol, mu = region_statistics(masks, hu, VOX_ML)
    assert vol[2].item() == pytest.approx(0.125) and mu[3].item() == pytest.approx(60.0)


def test_unreported_fields_give_zero_evidence():
    organ, hu, masks, _ = _scene()
    xi = evidence_vectors(masks, LesionTarget(organ="liver"), organ, hu, VOX_ML)
    assert (xi[:, 1:] == 0).all() and xi[0, 0] == 1.0
    xi = evidence_vectors(masks, LesionTarget(organ="liver", hu=10.0), None, None, VOX_ML)
    assert (xi == 0).all()  # no organ map, no HU image


def test_verifier_prefers_matching_candidate_with_ws_zeroed():
    organ, hu, masks, target = _scene()
    xi = evidence_vectors(masks, target, organ, hu, VOX_ML, organ_mean_hu(hu, organ > 0.5))
    ver = RegionVerifier(channels=3, d=5)
    with torch.no_grad():
        ver.w_s.weight.zero_()
        ver.w_s.bias.zero_()
    res = ver(torch.randn(4, 3), torch.randn(5), xi, tau=0.5)
    assert res.chosen == 0
    assert torch.allclose(res.semantic, torch.full((4,), 0.5))
    assert torch.allclose(res.scores, 0.5 + xi @ ver.eta)
    p = torch.softmax(res.scores.detach() / 0.5, 0)
    assert torch.allclose(res.probs, p) and res.entropy.detach().item() == pytest.approx(float(-(p * p.log()).sum()), rel=1e-5)
    # the semantic term can overrule the evidence once learnt
    with torch.no_grad():
        ver.eta.zero_()
        ver.w_s.weight[0, 0] = 10.0
    feats = torch.zeros(4, 3)
    feats[2, 0] = 1.0
    assert ver(feats, torch.zeros(5), xi).chosen == 2


def test_scores_are_differentiable():
    organ, hu, masks, target = _scene()
    xi = evidence_vectors(masks, target, organ, hu, VOX_ML, 60.0)
    ver = RegionVerifier(channels=3, d=5)
    feats = torch.randn(3, 16, 16, 16, requires_grad=True)
    z = torch.randn(5, requires_grad=True)
    ver(masked_pool(feats, masks), z, xi).entropy.backward()
    assert feats.grad.abs().sum() > 0 and z.grad.abs().sum() > 0 and ver.eta.grad is not None


def test_masked_pool_is_the_region_mean():
    f = torch.randn(3, 5, 5, 5)
    m = torch.zeros(2, 5, 5, 5, dtype=torch.bool)
    m[0, :2] = True
    m[1, 4, 4, 4] = True
    v = masked_pool(f, m)
    assert torch.allclose(v[0], f[:, :2].reshape(3, -1).mean(1), atol=1e-6) and torch.allclose(v[1], f[:, 4, 4, 4])
