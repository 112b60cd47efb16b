"""Image encoder: a MONAI ResNet trunk (2D or 3D) whose last feature map becomes the visual tokens.

MedGrounder encodes the image with ResNet-101 (003 §3.2); here the ResNet is MONAI's, so the same
class serves radiographs (``spatial_dims=2``) and CT volumes (``spatial_dims=3``). Only the stem
and the first ``len(layers)`` residual stages run (the classifier head is dropped), and a 1x1 conv
projects the feature map to the transformer width, as DETR/MDETR do.
"""
from __future__ import annotations

import torch
from monai.networks.nets import ResNet
from torch import nn

from .config import MedGrounderConfig

_STAGES = ("layer1", "layer2", "layer3", "layer4")


class ImageEncoder(nn.Module):
    """(B, C, *spatial) -> (B, d_model, *spatial / stride) feature map."""

    def __init__(self, cfg: MedGrounderConfig):
        super().__init__()
        n = len(cfg.resnet_layers)
        if not 1 <= n <= 4 or len(cfg.resnet_channels) != n:
            raise ValueError("resnet_layers and resnet_channels need 1-4 entries of the same length")
        # MONAI's ResNet always builds 4 stages; unused ones are given width 1 and removed
        pad = 4 - n
        trunk = ResNet(
            block=cfg.resnet_block,
            layers=list(cfg.resnet_layers) + [1] * pad,
            block_inplanes=list(cfg.resnet_channels) + [1] * pad,
            spatial_dims=cfg.spatial_dims,
            n_input_channels=cfg.in_channels,
            conv1_t_stride=1,
            feed_forward=False,
            norm=cfg.resnet_norm,
        )
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.act, trunk.maxpool)
        self.stages = nn.Sequential(*[getattr(trunk, name) for name in _STAGES[:n]])
        expansion = 4 if cfg.resnet_block == "bottleneck" else 1
        conv = nn.Conv3d if cfg.spatial_dims == 3 else nn.Conv2d
        self.proj = conv(cfg.resnet_channels[-1] * expansion, cfg.d_model, kernel_size=1)
        self.stride = 2 * 2 ** (n - 1)  # max pool, then every stage after the first halves

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.stages(self.stem(x)))
