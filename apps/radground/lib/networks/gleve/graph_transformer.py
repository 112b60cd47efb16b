"""Relation-aware graph transformer of 000 eq. 1 (LeQu's graph reasoning).

    alpha_uv = softmax_{u in N(v)} ( (W_q h_v)^T (W_k h_u + W_r r_uv) / sqrt(d) )
    h_v'     = FFN(h_v) + sum_{u in N(v)} alpha_uv W_v h_u

N(v) is the set of sources of edges ``u -> v`` (self loops included when the graph has them), so
the softmax runs over each node's incoming edges only; it is computed with index/scatter ops on
the edge list (no torch_geometric). A node without incoming edges receives no message.
W_q, W_k, W_v are d x d and W_r is d x d_r without biases, exactly the matrices of eq. 1; r_uv is
a learnable embedding per relation type. FFN is residual (h + MLP(LN(h))), as the paper states.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


def edge_softmax(logits: torch.Tensor, dst: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Softmax of per-edge ``logits`` (E,) over the edges that share a target node."""
    if logits.numel() == 0:
        return logits
    idx = dst.to(logits.device)
    peak = torch.full((num_nodes,), float("-inf"), dtype=logits.dtype, device=logits.device)
    peak = peak.scatter_reduce(0, idx, logits.detach(), reduce="amax", include_self=True)
    ex = torch.exp(logits - peak[idx])
    denom = torch.zeros(num_nodes, dtype=logits.dtype, device=logits.device).index_add(0, idx, ex)
    return ex / denom[idx]


class ResidualFFN(nn.Module):
    """FFN(h) = h + W_2 GELU(W_1 LN(h)): the residual feed-forward network of eq. 1."""

    def __init__(self, d: int, mult: int = 2, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, mult * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(mult * d, d))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.net(h)


class RelationalGraphLayer(nn.Module):
    """One layer of eq. 1."""

    def __init__(self, d: int, d_r: int, num_relations: int, ffn_mult: int = 2, dropout: float = 0.0):
        super().__init__()
        self.d = d
        self.w_q = nn.Linear(d, d, bias=False)
        self.w_k = nn.Linear(d, d, bias=False)
        self.w_v = nn.Linear(d, d, bias=False)
        self.w_r = nn.Linear(d_r, d, bias=False)
        self.rel = nn.Embedding(num_relations, d_r)
        self.ffn = ResidualFFN(d, ffn_mult, dropout)

    def attention(self, h: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor) -> torch.Tensor:
        """alpha_uv per edge (E,)."""
        src, dst = edge_index[0], edge_index[1]
        q = self.w_q(h)[dst]
        k = self.w_k(h)[src] + self.w_r(self.rel(edge_type))
        return edge_softmax((q * k).sum(-1) / math.sqrt(self.d), dst, h.shape[0])

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor, return_attention: bool = False):
        alpha = self.attention(h, edge_index, edge_type)
        msg = alpha.unsqueeze(-1) * self.w_v(h)[edge_index[0]]
        agg = torch.zeros_like(h).index_add(0, edge_index[1], msg)
        out = self.ffn(h) + agg
        return (out, alpha) if return_attention else out


class RelationalGraphEncoder(nn.Module):
    """Input projection (text-encoder dim -> d) followed by L layers of eq. 1."""

    def __init__(self, in_dim: int, d: int, d_r: int, num_relations: int, num_layers: int = 2, ffn_mult: int = 2, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(in_dim, d)
        self.layers = nn.ModuleList([RelationalGraphLayer(d, d_r, num_relations, ffn_mult, dropout) for _ in range(num_layers)])

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor, return_attention: bool = False):
        h = self.proj(x)
        attn: list[torch.Tensor] = []
        edge_index, edge_type = edge_index.to(h.device), edge_type.to(h.device)
        for layer in self.layers:
            h, a = layer(h, edge_index, edge_type, return_attention=True)
            attn.append(a)
        return (h, attn) if return_attention else h


def lesion_summaries(h: torch.Tensor, lesion_nodes: torch.Tensor) -> torch.Tensor:
    """z_i = h^L of lesion node i (N, d)."""
    return h[lesion_nodes.to(h.device)]


__all__ = ["edge_softmax", "ResidualFFN", "RelationalGraphLayer", "RelationalGraphEncoder", "lesion_summaries"]
