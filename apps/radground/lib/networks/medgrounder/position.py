"""Fixed sine positional encoding of the visual tokens, for 2D and 3D feature maps.

DETR/MDETR add a sine encoding of the (normalised) token position to the attention queries and
keys of every layer. torch and MONAI ship none for N-D grids, so it is written here: the channels
are split evenly over the spatial axes (any remainder is zero), each axis gets sin/cos pairs at
geometric frequencies, as DETR's ``PositionEmbeddingSine`` does in 2D.
"""
from __future__ import annotations

import math

import torch


def sine_position_encoding(shape: tuple[int, ...], d_model: int, temperature: float = 10000.0, device=None) -> torch.Tensor:
    """(prod(shape), d_model) encoding of the positions of a grid of ``shape`` (flattened C order)."""
    nd = len(shape)
    per_axis = (d_model // nd) // 2 * 2
    if per_axis < 2:
        raise ValueError(f"d_model {d_model} too small for {nd}-D positions")
    half = per_axis // 2
    freqs = temperature ** (torch.arange(half, dtype=torch.float32, device=device) / half)
    axes = torch.meshgrid(*[torch.arange(n, dtype=torch.float32, device=device) for n in shape], indexing="ij")
    parts = []
    for a, n in zip(axes, shape):
        pos = (a.reshape(-1) + 0.5) / n * 2 * math.pi  # normalised, as DETR's normalize=True
        ang = pos[:, None] / freqs[None]
        parts.append(torch.stack([ang.sin(), ang.cos()], dim=-1).reshape(len(pos), per_axis))
    enc = torch.cat(parts, dim=1)
    if enc.shape[1] < d_model:
        enc = torch.cat([enc, enc.new_zeros(enc.shape[0], d_model - enc.shape[1])], dim=1)
    return enc
