"""Checks a volume before any model touches it, so bad input gets a clear 4xx, not a crash.

The header check is cheap (SimpleITK reads only the header) and runs before inference; the
intensity check runs on the loaded array inside the infer task, where the voxels are already in
memory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from lib.errors import ImageTooLargeError, InvalidImageError

#: Default limit on voxels per volume: 512 x 512 x 1024 (a long whole-body CT at full resolution).
DEFAULT_MAX_VOXELS = 512 * 512 * 1024


@dataclass(frozen=True)
class VolumeInfo:
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    components: int

    @property
    def voxels(self) -> int:
        return int(np.prod(self.shape))


def inspect_volume(path: str, max_voxels: int = DEFAULT_MAX_VOXELS, dims: int = 3) -> VolumeInfo:
    """Read a volume's header and reject what no task here can ground: unreadable, not 3D, too big.

    ``dims=2``: the task reads radiographs (``medgrounder_cxr``): a 2D image is required instead."""
    if not path or not os.path.exists(path):
        raise InvalidImageError("image file does not exist")
    try:
        if os.path.isdir(path):
            names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(path)
            if not names:
                raise InvalidImageError("directory holds no DICOM series")
            reader = sitk.ImageFileReader()
            reader.SetFileName(names[0])
            reader.ReadImageInformation()
            size = tuple(int(s) for s in reader.GetSize()[:2]) + (len(names),)
        else:
            reader = sitk.ImageFileReader()
            reader.SetFileName(path)
            reader.ReadImageInformation()
            size = tuple(int(s) for s in reader.GetSize())
        spacing = tuple(float(s) for s in reader.GetSpacing())
        components = int(reader.GetNumberOfComponents())
    except InvalidImageError:
        raise
    except Exception as e:  # SimpleITK raises RuntimeError with a long C++ trace: keep it server-side
        raise InvalidImageError(f"image could not be read ({type(e).__name__}); is it a valid NIfTI/NRRD/DICOM volume?") from e

    # A trailing singleton axis (x, y, z, 1) is a 3D volume written as 4D.
    while len(size) > 3 and size[-1] == 1:
        size = size[:-1]
    what = "3D CT volume" if dims == 3 else f"{dims}D image (a radiograph)"
    if len(size) != dims or min(size) < 2:
        raise InvalidImageError(f"expected a {what}, got an image of size {list(size)}")
    if components != 1:
        raise InvalidImageError(f"expected a scalar {what}, got {components} components per voxel")
    if any((not np.isfinite(s)) or s <= 0 for s in spacing[:dims]):
        raise InvalidImageError(f"invalid voxel spacing {list(spacing)}")
    info = VolumeInfo(shape=size, spacing=spacing[:dims], components=components)
    if info.voxels > max_voxels:
        raise ImageTooLargeError(
            f"volume has {info.voxels:,} voxels, over this server's limit of {max_voxels:,} (conf max_voxels)"
        )
    return info


def check_ct_intensities(array: np.ndarray) -> None:
    """Reject volumes whose values cannot be CT in Hounsfield units (MR, PET, normalised arrays).

    A CT of a body has air (about -1000 HU) around or inside it and soft tissue near 0-100 HU:
    the low percentile must reach below -300 HU (and not under -3100, the padding floor of
    scanners) and the spread must exceed 300 HU.
    """
    a = np.asarray(array)
    if a.size == 0 or not np.issubdtype(a.dtype, np.number):
        raise InvalidImageError("image holds no numeric voxels")
    sample = a.reshape(-1)[:: max(1, a.size // 200_000)].astype(np.float32)
    if not np.all(np.isfinite(sample)):
        raise InvalidImageError("image holds NaN or infinite voxels")
    p1, p99 = np.percentile(sample, [1, 99])
    if p1 > -300 or (p99 - p1) < 300 or p99 > 4000 or p1 < -3100:
        raise InvalidImageError(
            f"intensities ({p1:.0f}..{p99:.0f}) do not look like CT in Hounsfield units; "
            "this server grounds CT reports only"
        )
