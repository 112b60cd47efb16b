"""000 eq. 2: organ-prior FiLM is the identity at initialisation and organ-dependent once learnt;
the QueryBank maps lesion summaries to M queries in the visual channel space."""
from __future__ import annotations

import pytest
import torch

from lib.networks.gleve.anatomy_film import OrganFiLM
from lib.networks.gleve.query_bank import QueryBank

C, K = 6, 2


def _maps():
    m = torch.zeros(1, K, 4, 4, 4)
    m[0, 0, :2] = 1.0  # organ 0 in x < 2
    m[0, 1, 2:] = 1.0  # organ 1 in x >= 2
    return m


def test_identity_at_init():
    torch.manual_seed(0)
    film = OrganFiLM(K, C, organ_dim=8)
    f = torch.randn(1, C, 4, 4, 4)
    out = film(f, _maps())
    assert out.shape == f.shape
    assert torch.allclose(out, f, atol=2e-2)
    gamma, beta = film.film_parameters(_maps())
    assert torch.allclose(gamma, torch.ones_like(gamma), atol=1e-2) and beta.abs().max() < 1e-2


def test_organ_dependent_after_perturbing_embeddings():
    torch.manual_seed(0)
    film = OrganFiLM(K, C, organ_dim=8)
    with torch.no_grad():
        film.organ_emb.normal_(0, 2.0)
        film.psi[-1].weight.normal_(0, 0.5)
    f = torch.ones(1, C, 4, 4, 4)  # the same feature everywhere
    out = film(f, _maps())[0]
    assert not torch.allclose(out[:, 0, 0, 0], out[:, 3, 0, 0], atol=1e-3)  # organ 0 vs organ 1
    assert torch.allclose(out[:, 0, 0, 0], out[:, 1, 2, 3])  # same organ -> same modulation
    with torch.no_grad():
        film.organ_emb[1] = film.organ_emb[0]
    out2 = film(f, _maps())[0]
    assert torch.allclose(out2[:, 0, 0, 0], out2[:, 3, 0, 0], atol=1e-5)


def test_embeddings_get_gradient_at_init_and_maps_are_resampled():
    torch.manual_seed(0)
    film = OrganFiLM(K, C)
    f = torch.randn(1, C, 2, 2, 2, requires_grad=True)
    film(f, _maps()).pow(2).sum().backward()  # 4^3 maps, 2^3 features
    assert film.organ_emb.grad is not None and film.organ_emb.grad.abs().sum() > 0
    assert f.grad is not None
    with pytest.raises(ValueError, match="organ maps"):
        film(f, torch.zeros(1, K + 1, 2, 2, 2))


def test_query_bank_shapes_and_lesion_specific():
    torch.manual_seed(0)
    qb = QueryBank(d=10, channels=C, num_queries=3)
    z = torch.randn(2, 10)
    q = qb(z)
    assert q.shape == (2, 3, C)
    assert not torch.allclose(q[0], q[1]) and not torch.allclose(q[0, 0], q[0, 1])
