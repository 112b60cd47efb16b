"""000 eq. 3 response and the thresholded connected-component candidates."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lib.networks.gleve.proposals import adaptive_threshold, box_candidate, extract_candidates, response_map


def test_cosine_response_matches_hand_computation():
    torch.manual_seed(0)
    q = torch.randn(2, 3, 5)  # N=2 lesions, M=3 queries, C=5
    f = torch.randn(5, 4, 3, 2)
    s = response_map(q, f)
    assert s.shape == (2, 4, 3, 2)
    for i, (x, y, z) in [(0, (0, 0, 0)), (1, (3, 2, 1)), (0, (2, 1, 0))]:
        v = f[:, x, y, z]
        expect = max(float(q[i, m] @ v / (q[i, m].norm() * v.norm())) for m in range(3))
        assert s[i, x, y, z].item() == pytest.approx(expect, abs=1e-5)
    assert torch.allclose(response_map(q, f.unsqueeze(0)), s)


def test_response_is_differentiable_in_queries():
    q = torch.randn(1, 2, 4, requires_grad=True)
    response_map(q, torch.randn(4, 3, 3, 3)).sum().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


def _two_blobs():
    s = torch.zeros(16, 16, 16)
    s[2:4, 2:4, 2:4] = 0.9  # A: small, strong
    s[8:11, 8:11, 8:11] = 0.6  # B: larger, weaker
    return s


def test_two_blobs_ordered_by_response():
    s = _two_blobs()
    c = extract_candidates(s, top_k=3)
    assert len(c) == 2
    a, b = c
    assert a.size == 8 and b.size == 27 and a.mean_response == pytest.approx(0.9)
    assert torch.equal(a.mask, s > 0.8) and torch.equal(b.mask, (s > 0.5) & (s < 0.7))
    assert a.bbox == ((2, 4), (2, 4), (2, 4)) and b.bbox == ((8, 11), (8, 11), (8, 11))
    assert a.mask.dtype == torch.bool and 0.0 < a.threshold < 0.6
    assert [x.size for x in extract_candidates(s, top_k=1)] == [8]


def test_rank_by_mean_or_peak():
    s = torch.zeros(16, 16, 16)
    s[2:5, 2:5, 2:5] = 0.5
    s[3, 3, 3] = 0.95  # A: high peak, lower mean
    s[9:12, 9:12, 9:12] = 0.7  # B: uniform
    by_mean = extract_candidates(s, 2, rank_by="mean")
    by_peak = extract_candidates(s, 2, rank_by="peak")
    assert by_mean[0].bbox[0] == (9, 12) and by_peak[0].bbox[0] == (2, 5)


def test_region_min_size_and_empty_cases():
    s = _two_blobs()
    region = torch.zeros_like(s, dtype=torch.bool)
    region[6:14, 6:14, 6:14] = True
    only_b = extract_candidates(s, 3, region=region)
    assert len(only_b) == 1 and only_b[0].size == 27
    assert [x.size for x in extract_candidates(s, 3, min_voxels=10)] == [27]
    assert extract_candidates(torch.full((8, 8, 8), 0.3), 3) == []  # nothing above threshold
    assert extract_candidates(s, 3, min_voxels=1000) == []
    assert len(extract_candidates(s, 3, region=torch.zeros_like(region))) == 2  # empty region: whole volume
    with pytest.raises(ValueError):
        extract_candidates(s, 3, rank_by="size")


def test_thresholds():
    v = torch.cat([torch.zeros(100), torch.ones(10)]).numpy()
    assert 0.0 < adaptive_threshold(v, "otsu") < 1.0
    assert adaptive_threshold(v, "mean_std", k_std=1.0) == pytest.approx(v.mean() + v.std())
    assert adaptive_threshold(v[:5], "otsu") is None
    with pytest.raises(ValueError):
        adaptive_threshold(v, "triangle")


def test_box_candidate():
    m = torch.zeros(8, 8, 8, dtype=torch.bool)
    m[1, 2, 3] = m[3, 4, 3] = True
    c = box_candidate(m, torch.rand(8, 8, 8), 0.2)
    assert c.bbox == ((1, 4), (2, 5), (3, 4)) and c.size == 9 and c.mask.sum() == 9
    assert box_candidate(torch.zeros_like(m), torch.rand(8, 8, 8), 0.2) is None
