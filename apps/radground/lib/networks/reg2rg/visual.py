"""Visual side of Reg2RG (004 §3.2-3.3): volume encoder, Perceiver adapter, geometry encoder.

The volume and mask encoders are MONAI's ViT (RadFM's ViT3D is a plain 3D ViT as well). The
adapter is a small Perceiver resampler written here: a fixed set of learned latents
cross-attends to the ViT tokens (Flamingo/RadFM style), so every volume, whatever its token
count, becomes ``n_visual_tokens`` embeddings. transformers' Idefics resamplers need a full
Idefics config and vision tower around them, which is why it is not reused.
"""
from __future__ import annotations

import torch
from monai.networks.nets import ViT
from torch import nn

from .config import Reg2RGConfig


class VolumeEncoder(nn.Module):
    """(B, 1, X, Y, Z) volume -> (B, N_patches, vis_dim) tokens (004 eq. 3: E_v)."""

    def __init__(self, cfg: Reg2RGConfig):
        super().__init__()
        self.vit = ViT(
            in_channels=1,
            img_size=cfg.image_size,
            patch_size=cfg.patch_size,
            hidden_size=cfg.vis_dim,
            mlp_dim=cfg.vis_mlp,
            num_layers=cfg.vis_layers,
            num_heads=cfg.vis_heads,
            classification=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)[0]


class PerceiverLayer(nn.Module):
    """Latents attend to [tokens; latents], then a feed-forward block (pre-norm, residual)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_x, self.norm_l = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        q = self.norm_l(latents)
        kv = torch.cat([self.norm_x(x), q], dim=1)
        latents = latents + self.attn(q, kv, kv, need_weights=False)[0]
        return latents + self.ff(latents)


class PerceiverResampler(nn.Module):
    """(B, N, D) tokens -> (B, n_latents, D): the adapter A of 004 eq. 3 and 7."""

    def __init__(self, dim: int, n_latents: int, layers: int, heads: int):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_latents, dim) * 0.02)
        self.layers = nn.ModuleList([PerceiverLayer(dim, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lat = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            lat = layer(x, lat)
        return self.norm(lat)


class GeometryEncoder(nn.Module):
    """Uncropped region mask -> lightweight 3-layer ViT -> mean pooled -> one token (004 eq. 4, before the FC)."""

    def __init__(self, cfg: Reg2RGConfig):
        super().__init__()
        self.vit = ViT(
            in_channels=1,
            img_size=cfg.mask_size,
            patch_size=cfg.mask_patch_size,
            hidden_size=cfg.geo_dim,
            mlp_dim=cfg.geo_mlp,
            num_layers=cfg.geo_layers,
            num_heads=cfg.geo_heads,
            classification=False,
        )

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.vit(mask)[0].mean(dim=1)


class IntensityHistogram(nn.Module):
    """Region crop -> one token from the histogram of its voxels inside the mask (log counts).

    Not in 004: its texture encoder is RadFM's pretrained ViT3D. The tiny encoders here train from
    scratch and, on a CPU budget, never learned to read lung, thyroid or oesophagus texture (README,
    Reg2RG runs 5-9), while a linear probe on this histogram separates lung masses and consolidation.
    The token hands the LM what a pretrained encoder would: how much of the region is air, fat,
    fluid or soft tissue. Outside the mask the crop holds the normalised floor (-1): left out."""

    def __init__(self, bins: int, lm_hidden: int):
        super().__init__()
        self.bins = int(bins)
        self.mlp = nn.Sequential(nn.LayerNorm(self.bins), nn.Linear(self.bins, lm_hidden), nn.GELU(), nn.Linear(lm_hidden, lm_hidden))

    def counts(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.flatten(1).float()
        idx = ((x.clamp(-1.0, 1.0) + 1.0) / 2.0 * self.bins).long().clamp(max=self.bins - 1)
        inside = (x > -0.98).float()
        return torch.zeros(x.shape[0], self.bins, device=x.device).scatter_add_(1, idx, inside)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.log1p(self.counts(crops)))


class VisualFeatures(nn.Module):
    """Global tokens (B, 32, H), and per region 32 texture tokens + 1 geometry token (004 eq. 5), in LM width H."""

    def __init__(self, cfg: Reg2RGConfig, lm_hidden: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = VolumeEncoder(cfg)
        self.adapter = PerceiverResampler(cfg.vis_dim, cfg.n_visual_tokens, cfg.perceiver_layers, cfg.perceiver_heads)
        self.fc = nn.Linear(cfg.vis_dim, lm_hidden)  # shared by global and texture tokens (same E_v, A)
        self.geometry = GeometryEncoder(cfg) if cfg.use_geometry else None
        self.mask_fc = nn.Linear(cfg.geo_dim, lm_hidden) if cfg.use_geometry else None
        self.histogram = IntensityHistogram(cfg.histogram_bins, lm_hidden) if (cfg.use_texture and cfg.histogram_token) else None

    def texture(self, volumes: torch.Tensor) -> torch.Tensor:
        """(N, 1, *image_size) -> (N, n_visual_tokens, H)."""
        return self.fc(self.adapter(self.encoder(volumes)))

    def region_tokens(self, crops: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(R, 1, *image_size) crops and (R, 1, *mask_size) masks -> (R, region_tokens, H), row i = ``<region_i>``."""
        parts = []
        if self.cfg.use_texture:
            parts.append(self.texture(crops))
        if self.histogram is not None:
            parts.append(self.histogram(crops).unsqueeze(1))
        if self.geometry is not None:
            parts.append(self.mask_fc(self.geometry(masks)).unsqueeze(1))
        return torch.cat(parts, dim=1)
