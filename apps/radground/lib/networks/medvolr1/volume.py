"""The policy's view of a CT: a uniformly sampled sequence of axial slices on a square grid.

002 §3.1.3 feeds 64 axial slices resized to 256 x 256; the tiny variant uses fewer and smaller.
Slice ``t`` of the sequence is source slice ``z_index[t]`` (``np.linspace`` over the volume's
z range, rounded), resized in-plane with MONAI ``Resize`` (area for the image, nearest for masks).

Pixel convention, shared by boxes, masks and the policy's images: a sequence slice is an array
``[x, y]`` with x along the source's first axis (i) and y along its second (j); a 2D box is
``[x1, y1, x2, y2]`` in pixels with the upper edges exclusive (``lib.metrics.boxes``), and the
image shown to the VLM is the slice transposed (rows = y, columns = x), so a box reads as
(column, row) as in Qwen-VL's grounding format.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import Resize

#: soft-tissue window (HU) mapped to [0, 1]
WINDOW_HU = (-160.0, 240.0)


@dataclass
class SliceSequence:
    """``image`` (T, S, S) float in [0, 1]; ``z_index`` (T,) source slice of each; ``source_shape``."""

    image: np.ndarray
    z_index: np.ndarray
    source_shape: tuple[int, int, int]

    @property
    def n_slices(self) -> int:
        return int(self.image.shape[0])

    @property
    def size(self) -> int:
        return int(self.image.shape[1])


def sample_z(nz: int, n_slices: int) -> np.ndarray:
    """Uniformly spaced source slice indices (repeats when the volume has fewer slices)."""
    if nz < 1 or n_slices < 1:
        raise ValueError(f"need at least one slice (volume {nz}, asked {n_slices})")
    return np.round(np.linspace(0, nz - 1, n_slices)).astype(int)


def _resize_slices(stack: np.ndarray, size: int, mode: str) -> np.ndarray:
    """(T, X, Y) -> (T, size, size), each slice resized with MONAI Resize."""
    t = torch.as_tensor(np.ascontiguousarray(stack), dtype=torch.float32)[:, None]
    kw = {} if mode in ("nearest", "area") else {"align_corners": False}
    out = torch.stack([Resize((size, size), mode=mode, **kw)(s) for s in t])[:, 0]
    return out.numpy()


def window(hu: np.ndarray, lo_hi=WINDOW_HU) -> np.ndarray:
    lo, hi = lo_hi
    return np.clip((np.asarray(hu, np.float32) - lo) / (hi - lo), 0.0, 1.0)


def to_sequence(volume_hu: np.ndarray, n_slices: int, size: int) -> SliceSequence:
    """A (X, Y, Z) HU volume -> its slice sequence."""
    v = np.asarray(volume_hu)
    if v.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {v.shape}")
    z = sample_z(v.shape[2], n_slices)
    stack = np.moveaxis(window(v[:, :, z]), 2, 0)
    return SliceSequence(_resize_slices(stack, size, "area").astype(np.float32), z, tuple(int(s) for s in v.shape))


def mask_to_sequence(mask: np.ndarray, seq: SliceSequence) -> np.ndarray:
    """A source-grid mask -> (T, S, S) bool on the sequence grid."""
    m = np.asarray(mask)
    if tuple(m.shape) != tuple(seq.source_shape):
        raise ValueError(f"mask shape {m.shape} is not the volume's {seq.source_shape}")
    stack = np.moveaxis(m[:, :, seq.z_index].astype(np.float32), 2, 0)
    return _resize_slices(stack, seq.size, "nearest") > 0.5


def mask_to_source(seq_mask: np.ndarray, seq: SliceSequence) -> np.ndarray:
    """(T, S, S) sequence mask -> a source-grid bool mask: each source slice takes its nearest
    sampled slice (the evidence only exists on those), resized back in-plane (nearest)."""
    nx, ny, nz = seq.source_shape
    t = torch.as_tensor(np.asarray(seq_mask, np.float32))[:, None]
    up = torch.stack([Resize((nx, ny), mode="nearest")(s) for s in t])[:, 0].numpy() > 0.5  # (T, nx, ny)
    nearest = np.abs(np.arange(nz)[:, None] - seq.z_index[None, :]).argmin(1)
    return np.moveaxis(up[nearest], 0, 2)
