"""Visual encoder of 000 §2.3: CT volume -> voxel features F with C channels at input resolution.

The paper uses MedFormer, which MONAI does not ship; a MONAI UNet (tiny, CPU) or SegResNet (paper
size) with ``out_channels = C`` stands in. Features stay at the input resolution (stride 1), so
response maps, candidates and the octree all live on the image grid.
"""
from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import SegResNet, UNet


def build_visual_encoder(arch: str, channels: int, in_channels: int = 1, **kw: Any) -> torch.nn.Module:
    """(B, in_channels, X, Y, Z) -> (B, channels, X, Y, Z). ``arch`` is 'unet' or 'segresnet'."""
    if arch == "unet":
        return UNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=channels,
            channels=tuple(kw.get("unet_channels", (8, 16, 32))),
            strides=tuple(kw.get("strides", (2, 2))),
            num_res_units=int(kw.get("num_res_units", 1)),
            norm=kw.get("norm", "instance"),
        )
    if arch == "segresnet":
        return SegResNet(
            spatial_dims=3,
            in_channels=in_channels,
            out_channels=channels,
            init_filters=int(kw.get("init_filters", 32)),
            blocks_down=tuple(kw.get("blocks_down", (1, 2, 2, 4))),
            blocks_up=tuple(kw.get("blocks_up", (1, 1, 1))),
            norm=kw.get("norm", ("GROUP", {"num_groups": 8})),
        )
    raise ValueError(f"unknown GLeVE visual encoder {arch!r}; choose 'unet' or 'segresnet'")
