"""CT pre-processing shared by training and inference, so both see the same voxels.

Orientation LPS (the array order DICOM and the synthetic engine use), resampling to the task's
target spacing, and an HU window scaled to [0, 1].
"""
from __future__ import annotations

from typing import Hashable, Mapping, Optional, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import (
    CopyItemsd,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    Orientationd,
    ScaleIntensityRanged,
    Spacingd,
)

from lib.data.validation import check_ct_intensities

#: Soft-tissue window used by every lesion task (lesions live between fat and contrast-filled vessels).
HU_WINDOW = (-200.0, 300.0)


class CheckCTd(MapTransform):
    """Fail early, with a readable message, on volumes that are not CT in HU."""

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            v = d[key]
            check_ct_intensities(v.numpy() if torch.is_tensor(v) else np.asarray(v))
        return d


class RememberGeometryd(MapTransform):
    """Keep the image's original affine and shape, so results are written on the input grid.

    They are stored as ``source_affine`` / ``source_shape``, and MONAI Label's ``image_path`` is
    moved to ``source_path``: MONAI's Spacingd treats every ``<key>_*`` entry as a meta dict.
    """

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            d["source_affine"] = np.asarray(img.affine, dtype=np.float64)
            d["source_shape"] = tuple(int(s) for s in img.shape[-3:])
            if f"{key}_path" in d:
                d["source_path"] = d.pop(f"{key}_path")
        return d


def load_ct(keys: KeysCollection, image_key: str = "image") -> list:
    """Load + channel-first; the image is checked for CT intensities and its geometry remembered."""
    return [
        LoadImaged(keys=keys, image_only=True),
        EnsureChannelFirstd(keys=keys),
        CheckCTd(keys=image_key),
        RememberGeometryd(keys=image_key),
    ]


def resample_and_window(
    keys: KeysCollection, spacing: Sequence[float], image_key: str = "image", label_keys: Sequence[str] = (), hu_key: Optional[str] = None
) -> list:
    """Orient, resample to ``spacing`` (labels nearest-neighbour) and window HU to [0, 1].

    ``hu_key``: also keep the resampled image in HU under this key (GLeVE compares region HU with
    the report, 000 eq. 4), taken before windowing.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    modes = ["nearest" if k in label_keys else "bilinear" for k in keys]
    keep_hu = [CopyItemsd(keys=image_key, names=hu_key)] if hu_key else []
    return [
        Orientationd(keys=keys, axcodes="LPS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        Spacingd(keys=keys, pixdim=tuple(spacing), mode=modes),
        *keep_hu,
        ScaleIntensityRanged(keys=image_key, a_min=HU_WINDOW[0], a_max=HU_WINDOW[1], b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(keys=keys + ([hu_key] if hu_key else []), dtype=torch.float32),
    ]
