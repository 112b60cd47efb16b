"""000 eq. 1 checked by hand on a 3-node graph."""
from __future__ import annotations

import math

import torch

from lib.networks.gleve.graph_transformer import RelationalGraphEncoder, RelationalGraphLayer, edge_softmax

D, DR = 4, 2


def _layer(seed=0):
    torch.manual_seed(seed)
    return RelationalGraphLayer(D, DR, num_relations=3)


# edges u -> v: 0->2 (type 1), 1->2 (type 2), 2->2 self (type 0), 0->0 self (type 0); node 1 has no incoming edge
EDGES = torch.tensor([[0, 1, 2, 0], [2, 2, 2, 0]])
TYPES = torch.tensor([1, 2, 0, 0])


def test_attention_and_update_match_hand_computation():
    layer = _layer()
    h = torch.randn(3, D)
    with torch.no_grad():
        out, alpha = layer(h, EDGES, TYPES, return_attention=True)
        wq, wk, wv, wr = (m.weight for m in (layer.w_q, layer.w_k, layer.w_v, layer.w_r))
        r = layer.rel.weight
        q2 = wq @ h[2]
        logits = torch.stack([q2 @ (wk @ h[u] + wr @ r[t]) / math.sqrt(D) for u, t in ((0, 1), (1, 2), (2, 0))])
        expected = torch.exp(logits) / torch.exp(logits).sum()
        assert torch.allclose(alpha[:3], expected, atol=1e-6)
        assert torch.allclose(alpha[3], torch.tensor(1.0))  # node 0's only neighbour is itself
        h2 = layer.ffn(h)[2] + sum(a * (wv @ h[u]) for a, u in zip(expected, (0, 1, 2)))
        assert torch.allclose(out[2], h2, atol=1e-5)
        assert torch.allclose(out[0], layer.ffn(h)[0] + wv @ h[0], atol=1e-5)
        assert torch.allclose(out[1], layer.ffn(h)[1], atol=1e-6)  # no incoming edge: no message


def test_softmax_only_over_neighbours():
    layer = _layer(1)
    h = torch.randn(3, D)
    h_changed = h.clone()
    h_changed[1] += 5.0  # node 1 is not a neighbour of node 0
    with torch.no_grad():
        a, b = layer(h, EDGES, TYPES), layer(h_changed, EDGES, TYPES)
    assert torch.allclose(a[0], b[0]) and not torch.allclose(a[2], b[2])


def test_relation_type_changes_attention():
    layer = _layer(2)
    h = torch.randn(3, D)
    with torch.no_grad():
        _, a1 = layer(h, EDGES, TYPES, return_attention=True)
        _, a2 = layer(h, EDGES, torch.tensor([2, 1, 0, 0]), return_attention=True)
    assert not torch.allclose(a1[:3], a2[:3])


def test_edge_softmax_groups_by_target():
    logits = torch.tensor([1.0, 2.0, 3.0, 50.0, -50.0])
    dst = torch.tensor([0, 0, 1, 2, 2])
    a = edge_softmax(logits, dst, 4)
    assert torch.allclose(a[:2], torch.softmax(logits[:2], 0)) and a[2] == 1.0
    assert torch.allclose(a[3:], torch.softmax(logits[3:], 0)) and torch.isfinite(a).all()


def test_encoder_projects_and_backpropagates():
    torch.manual_seed(0)
    enc = RelationalGraphEncoder(in_dim=7, d=D, d_r=DR, num_relations=3, num_layers=2)
    x = torch.randn(3, 7)
    h, attn = enc(x, EDGES, TYPES, return_attention=True)
    assert h.shape == (3, D) and len(attn) == 2
    h[2].sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())
    assert enc.layers[0].rel.weight.grad.abs().sum() > 0
