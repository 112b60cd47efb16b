"""Cross-modal transformer encoder and query decoder (MDETR, 003 §3.2 / Fig. 2).

Why hand-written layers: ``torch.nn.Transformer`` adds no positional encoding inside its layers,
while DETR/MDETR add it to the queries and keys of *every* attention (not to the values). Each
layer below is ``nn.MultiheadAttention`` + an FFN, post-norm, exactly that recipe.

* encoder: self-attention over the concatenation [visual tokens; text tokens]; visual tokens carry
  the sine position encoding, text tokens none (MDETR);
* decoder: N learnable query embeddings; self-attention among queries, cross-attention to the
  fused memory; the output of every layer is returned (auxiliary losses).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


def _ffn(d: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, d))


def _with_pos(x: torch.Tensor, pos: Optional[torch.Tensor]) -> torch.Tensor:
    return x if pos is None else x + pos


class EncoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = _ffn(d, hidden, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, src, pos=None, pad_mask=None):
        q = k = _with_pos(src, pos)
        src = self.norm1(src + self.drop(self.attn(q, k, src, key_padding_mask=pad_mask, need_weights=False)[0]))
        return self.norm2(src + self.drop(self.ffn(src)))


class DecoderLayer(nn.Module):
    def __init__(self, d: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn = _ffn(d, hidden, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, tgt, memory, query_pos, mem_pos=None, mem_pad=None):
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.drop(self.self_attn(q, k, tgt, need_weights=False)[0]))
        out = self.cross_attn(tgt + query_pos, _with_pos(memory, mem_pos), memory, key_padding_mask=mem_pad, need_weights=False)[0]
        tgt = self.norm2(tgt + self.drop(out))
        return self.norm3(tgt + self.drop(self.ffn(tgt)))


class CrossModalTransformer(nn.Module):
    """(fused tokens, their positions, padding) -> (dec_layers, B, N, d) query states."""

    def __init__(self, d: int, heads: int, enc_layers: int, dec_layers: int, hidden: int, dropout: float, num_queries: int):
        super().__init__()
        self.encoder = nn.ModuleList([EncoderLayer(d, heads, hidden, dropout) for _ in range(enc_layers)])
        self.decoder = nn.ModuleList([DecoderLayer(d, heads, hidden, dropout) for _ in range(dec_layers)])
        self.dec_norm = nn.LayerNorm(d)
        self.query_embed = nn.Embedding(num_queries, d)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        memory = src
        for layer in self.encoder:
            memory = layer(memory, pos, pad_mask)
        qpos = self.query_embed.weight[None].expand(src.shape[0], -1, -1)
        tgt = torch.zeros_like(qpos)
        states = []
        for layer in self.decoder:
            tgt = layer(tgt, memory, qpos, pos, pad_mask)
            states.append(self.dec_norm(tgt))
        return torch.stack(states)
