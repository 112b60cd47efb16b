"""Organ-prior FiLM of 000 eq. 2: make voxel features organ-aware before matching.

    E^(x) = phi_o( sum_k M~_k(x) e_k ),   (gamma(x), beta(x)) = psi(E^(x)),   F~ = gamma * F + beta

e_k is a learnable embedding per organ channel, phi_o a linear map to C and psi a small MLP, both
applied per voxel (1x1x1 convolutions). psi predicts (gamma - 1, beta) and its last layer starts
near zero, so at initialisation F~ ~= F and the prior is learnt in rather than imposed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OrganFiLM(nn.Module):
    """Feature-wise linear modulation by soft organ maps."""

    def __init__(self, num_organs: int, channels: int, organ_dim: int = 32, hidden: int | None = None, init_scale: float = 1e-3):
        super().__init__()
        self.num_organs = int(num_organs)
        self.organ_emb = nn.Parameter(torch.randn(num_organs, organ_dim))
        self.phi_o = nn.Conv3d(organ_dim, channels, 1)
        hidden = int(hidden or channels)
        self.psi = nn.Sequential(nn.Conv3d(channels, hidden, 1), nn.GELU(), nn.Conv3d(hidden, 2 * channels, 1))
        last = self.psi[-1]
        nn.init.normal_(last.weight, std=init_scale)
        nn.init.zeros_(last.bias)

    def film_parameters(self, organ_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma, beta (B, C, X, Y, Z) from soft organ maps (B, K_o, X, Y, Z)."""
        if organ_maps.shape[1] != self.num_organs:
            raise ValueError(f"expected {self.num_organs} organ maps, got {organ_maps.shape[1]}")
        token = torch.einsum("bkxyz,kd->bdxyz", organ_maps, self.organ_emb)
        delta = self.psi(self.phi_o(token))
        d_gamma, beta = delta.chunk(2, dim=1)
        return 1.0 + d_gamma, beta

    def forward(self, feats: torch.Tensor, organ_maps: torch.Tensor) -> torch.Tensor:
        """F~ for features (B, C, x, y, z); organ maps are resampled to the feature grid if needed."""
        organ_maps = organ_maps.to(feats.dtype)
        if organ_maps.shape[2:] != feats.shape[2:]:
            organ_maps = F.interpolate(organ_maps, size=feats.shape[2:], mode="trilinear", align_corners=False)
        gamma, beta = self.film_parameters(organ_maps)
        return gamma * feats + beta
