"""``medgrounder_cxr``: MedGrounder on a frontal chest radiograph (2D), the paper's own modality (003).

Same answer as ``medgrounder`` (:mod:`lib.infers.medgrounder`): per report sentence zero, one or
many scored boxes, ``box_vox`` as [lo, hi] inclusive pixel indices of the input image and
``box_mm`` the box's outer edges in the image's world frame (its two axes), a 2D label map with
each box outlined. The input is a single-channel 2D image (NIfTI/NRRD/PNG via ITK); its
intensities are scaled to [0, 1] (no HU windows: a radiograph is not in HU). The app's guard
accepts 2D images for this task only (``image_dims = 2``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from monai.transforms import EnsureChannelFirstd, LoadImaged, MapTransform

from lib.errors import InvalidImageError
from lib.infers.medgrounder import MedGrounderInfer, PrepareMedGrounderd


class RememberGeometry2d(MapTransform):
    """Keep the radiograph's 2D affine (3x3) and (X, Y) shape, so the label map is written on its grid."""

    def __call__(self, data):
        d = dict(data)
        img = d[self.keys[0]]
        a = np.asarray(img.affine, dtype=np.float64)
        d["source_affine"] = a[np.ix_([0, 1, 3], [0, 1, 3])] if a.shape == (4, 4) else a  # 3x3: ITK writes 2D images from it
        d["source_shape"] = tuple(int(s) for s in img.shape[1:])
        if f"{self.keys[0]}_path" in d:  # MONAI's spatial transforms treat <key>_* as meta
            d["source_path"] = d.pop(f"{self.keys[0]}_path")
        return d


class MedGrounderCXRInfer(MedGrounderInfer):
    image_dims = 2

    def __init__(self, *args, **kw):
        kw.setdefault("description", "MedGrounder on chest radiographs: each report sentence -> zero, one or many scored boxes")
        super().__init__(*args, **kw)

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        return [
            LoadImaged(keys="image", image_only=True),
            EnsureChannelFirstd(keys="image"),
            RememberGeometry2d(keys="image"),
            PrepareMedGrounderd(self.image_size, self.iso_mm, windows=None),
        ]

    def run_inferer(self, data: dict[str, Any], convert_to_batch=True, device="cuda"):
        if len(data.get("source_shape", ())) != 2:
            raise InvalidImageError(f"medgrounder_cxr reads 2D radiographs; got an image of shape {list(data.get('source_shape', ()))}")
        return super().run_inferer(data, convert_to_batch, device)
