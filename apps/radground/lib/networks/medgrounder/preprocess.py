"""The input pipeline MedGrounder trains and infers with, and the box mapping it implies.

Paper (§4.0.1): resize so the longer side is 640 px keeping the aspect ratio, zero-pad to a
square, normalise. Here the same for a CT volume (cube) or a radiograph (square): orient LPS,
resample isotropic (``iso_mm``), resize the longest side to ``image_size``, pad the end of the
other axes, window HU into one channel per window (CT) or scale to [0, 1] (radiograph). All MONAI
transforms, so the input's affine is tracked: :class:`ModelGrid` maps boxes between the source
image's voxels (what targets and answers use) and the model's normalised centre-size boxes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Resize, ScaleIntensityRange, Spacing, SpatialPad

from lib.metrics.boxes import box_voxel_to_world, box_world_to_voxel

#: (lung window, soft-tissue window) in HU: nodules and consolidation in air, effusions and the heart in soft tissue.
CT_WINDOWS = ((-1000.0, 400.0), (-200.0, 300.0))


@dataclass
class ModelGrid:
    """Geometry of one model input: its affine (4x4, voxel -> world) and side length (voxels)."""

    affine: np.ndarray
    size: int
    spatial_dims: int

    def normalise(self, source_boxes, source_affine) -> np.ndarray:
        """Source-voxel corner boxes (upper exclusive) -> (M, 2nd) normalised centre-size boxes of the model input."""
        b = np.asarray(source_boxes, float).reshape(-1, 2 * self.spatial_dims)
        if not len(b):
            return b
        world = box_voxel_to_world(b, source_affine)
        vox = box_world_to_voxel(world, self.affine)
        nd = self.spatial_dims
        c = np.clip(vox / self.size, 0.0, 1.0)
        return np.concatenate([(c[:, :nd] + c[:, nd:]) / 2, c[:, nd:] - c[:, :nd]], 1)

    def to_source(self, norm_corners, source_affine) -> np.ndarray:
        """Normalised corner boxes of the model input -> continuous source-voxel corner boxes."""
        b = np.asarray(norm_corners, float).reshape(-1, 2 * self.spatial_dims)
        if not len(b):
            return b
        world = box_voxel_to_world(b * self.size, self.affine)
        return box_world_to_voxel(world, source_affine)


def _meta(x: torch.Tensor, affine) -> MetaTensor:
    return x if isinstance(x, MetaTensor) else MetaTensor(x, affine=torch.as_tensor(np.asarray(affine, float)))


def prepare_image(image, affine, image_size: int, iso_mm: float, windows: Optional[Sequence[tuple[float, float]]] = CT_WINDOWS) -> tuple[torch.Tensor, ModelGrid]:
    """(1, *spatial) image with its 4x4 affine -> ((C, S, S[, S]) float tensor, its :class:`ModelGrid`).

    ``windows``: HU windows, one channel each (CT); None scales the image's own range to [0, 1]
    (a radiograph)."""
    x = _meta(torch.as_tensor(np.asarray(image), dtype=torch.float32), affine)
    nd = x.ndim - 1
    if nd == 3:
        x = Orientation(axcodes="LPS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(x)
    x = Spacing(pixdim=(float(iso_mm),) * nd, mode="bilinear")(x)
    x = Resize(spatial_size=int(image_size), size_mode="longest", mode="area" if nd == 2 else "trilinear")(x)
    x = SpatialPad(spatial_size=(int(image_size),) * nd, method="end", value=float(x.min()) if windows else 0.0)(x)
    grid = ModelGrid(np.asarray(x.affine, float), int(image_size), nd)
    if windows:
        chans = [ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)(x) for lo, hi in windows]
        out = torch.cat([c.as_tensor() if isinstance(c, MetaTensor) else torch.as_tensor(c) for c in chans], 0)
    else:
        t = x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)
        lo, hi = float(t.min()), float(t.max())
        out = (t - lo) / (hi - lo) if hi > lo else torch.zeros_like(t)
    return out.float().contiguous(), grid
