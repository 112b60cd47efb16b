"""The voxel segmenters of ``lesion_baseline`` and ``anatomy``: MONAI's 3D UNet or SegResNet.

Sizes come from the task config so the tiny variant trains on a CPU in minutes and the
paper-size variant (SegResNet, as in MONAI's CT recipes) runs on a GPU.
"""
from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import SegResNet, UNet


def build_ct_segmenter(arch: str, out_channels: int = 2, **kw: Any) -> torch.nn.Module:
    """Build a segmenter from its config entry (``arch`` = 'unet' or 'segresnet')."""
    if arch == "unet":
        return UNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=out_channels,
            channels=tuple(kw.get("channels", (16, 32, 64, 128))),
            strides=tuple(kw.get("strides", (2, 2, 2))),
            num_res_units=int(kw.get("num_res_units", 1)),
            norm=kw.get("norm", "instance"),
            dropout=float(kw.get("dropout", 0.0)),
        )
    if arch == "segresnet":
        return SegResNet(
            spatial_dims=3,
            in_channels=1,
            out_channels=out_channels,
            init_filters=int(kw.get("init_filters", 32)),
            blocks_down=tuple(kw.get("blocks_down", (1, 2, 2, 4))),
            blocks_up=tuple(kw.get("blocks_up", (1, 1, 1))),
            dropout_prob=float(kw.get("dropout", 0.0)),
        )
    raise ValueError(f"unknown lesion segmenter architecture {arch!r}")
