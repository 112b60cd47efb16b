"""QueryBank generator Psi_QB of 000 §2.2: one lesion summary z_i -> M visual-space queries.

Several queries per lesion let one description match voxels of different appearance (core, rim,
edge) - eq. 3 takes the max over them. A two-layer MLP maps z_i (d) to M x C; the paper does not
specify Psi_QB further.
"""
from __future__ import annotations

import torch
from torch import nn


class QueryBank(nn.Module):
    """(N, d) -> (N, M, C)."""

    def __init__(self, d: int, channels: int, num_queries: int, hidden: int | None = None):
        super().__init__()
        self.num_queries = int(num_queries)
        self.channels = int(channels)
        hidden = int(hidden or 2 * d)
        self.net = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, self.num_queries * self.channels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], self.num_queries, self.channels)
