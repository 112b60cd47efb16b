"""Volumetric propagation: lift the evidence anchor (key slice + 2D boxes) to a 3D mask.

002 uses a frozen MedSAM2 (slice-to-slice memory propagation). ``sam2`` is not installed here (it
pulls torchvision, which breaks this CPU torch; see README), so :mod:`.medsam2` only reports
whether it could be used, and the default is this project's own box-prompted slice segmenter
with memory of the neighbouring slice: a small MONAI 2D ``UNet`` reading three channels

    (slice image, box prompt mask, memory mask)

and giving the slice's mask logits. On the key slice the prompt and the memory are the boxes'
mask; on every other slice the prompt is empty and the memory is the mask just predicted on the
neighbour towards the key slice. Propagation runs up and down from the key slice and stops in
each direction at the first empty slice (as a tracker loses an object that left the volume).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from monai.networks.nets import UNet


@dataclass
class PropagatorConfig:
    channels: Sequence[int] = (16, 32, 64)
    strides: Sequence[int] = (2, 2)
    num_res_units: int = 1
    threshold: float = 0.5

    @classmethod
    def tiny(cls) -> "PropagatorConfig":
        return cls()

    @classmethod
    def paper(cls) -> "PropagatorConfig":
        return cls(channels=(32, 64, 128, 256), strides=(2, 2, 2), num_res_units=2)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in asdict(self).items()}


class SlicePropagator(torch.nn.Module):
    def __init__(self, config: PropagatorConfig | None = None):
        super().__init__()
        self.config = config or PropagatorConfig.tiny()
        c = self.config
        self.unet = UNet(spatial_dims=2, in_channels=3, out_channels=1, channels=tuple(c.channels), strides=tuple(c.strides), num_res_units=c.num_res_units)

    #: logit offset from the memory channel: the output starts as "the neighbour's mask" (adjacent
    #: slices of an organ differ little), and the UNet learns the correction
    MEMORY_PRIOR = 3.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 1, S, S) logits."""
        return self.unet(x) + self.MEMORY_PRIOR * (2.0 * x[:, 2:3] - 1.0)


def boxes_to_mask(boxes: np.ndarray, size: int) -> np.ndarray:
    """(N, 4) [x1, y1, x2, y2] pixel boxes -> (S, S) bool mask of the pixels they cover."""
    m = np.zeros((size, size), bool)
    for x1, y1, x2, y2 in np.asarray(boxes, float).reshape(-1, 4):
        a, b = int(np.clip(np.floor(x1), 0, size)), int(np.clip(np.ceil(x2), 0, size))
        c, d = int(np.clip(np.floor(y1), 0, size)), int(np.clip(np.ceil(y2), 0, size))
        m[a:b, c:d] = True
    return m


@torch.no_grad()
def propagate(net: SlicePropagator, seq_image: np.ndarray, key: int, boxes: np.ndarray) -> np.ndarray:
    """(T, S, S) slice sequence + key slice (0-based) + its boxes -> (T, S, S) bool mask."""
    img = torch.as_tensor(np.asarray(seq_image, np.float32))
    T, S = img.shape[0], img.shape[1]
    prompt = torch.as_tensor(boxes_to_mask(boxes, S), dtype=torch.float32)
    zero = torch.zeros_like(prompt)
    out = np.zeros((T, S, S), bool)
    was_training = net.training
    net.eval()

    def step(t: int, p: torch.Tensor, memory: torch.Tensor) -> np.ndarray:
        logits = net(torch.stack([img[t], p, memory])[None])[0, 0]
        return (torch.sigmoid(logits) > net.config.threshold).numpy()

    out[key] = step(key, prompt, prompt)
    for direction in (1, -1):
        prev, t = out[key], key + direction
        while 0 <= t < T and prev.any():
            out[t] = step(t, zero, torch.as_tensor(prev, dtype=torch.float32))
            prev, t = out[t], t + direction
    net.train(was_training)
    return out
