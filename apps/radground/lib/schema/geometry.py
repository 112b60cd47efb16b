"""The input grid a result refers to, and voxel boxes -> world boxes on it.

The geometry is read from the label file the task wrote (it is on the input grid by construction,
:mod:`lib.writers.label_writer`): only its header is read, so the hook costs nothing per request and
needs nothing from the task's private data.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from lib.metrics.boxes import box_voxel_to_world
from lib.schema.models import Box, CoordinateSystem, ImageGeometry

#: RAS <-> LPS: the sign of the first two world axes.
RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def affine_lps_of(image_or_reader) -> np.ndarray:
    """(nd+1)x(nd+1) voxel index (ITK order i, j[, k]) -> LPS mm of a SimpleITK image or header-read
    reader (4x4 for a volume, 3x3 for a 2D image)."""
    nd = len(image_or_reader.GetSpacing())
    direction = np.asarray(image_or_reader.GetDirection(), float).reshape(nd, nd)
    a = np.eye(nd + 1)
    a[:nd, :nd] = direction @ np.diag(image_or_reader.GetSpacing())
    a[:nd, nd] = image_or_reader.GetOrigin()
    return a


def geometry_of_label_file(path: Optional[str]) -> Optional[ImageGeometry]:
    """The grid (shape, spacing, affine) of a NIfTI/NRRD label file, from its header only: RAS for
    a volume; for a 2D image (a radiograph) its own plane, with the first two axes signed as RAS
    like the tasks' own mm keys (nibabel's convention)."""
    if not path:
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    nd = reader.GetDimension()
    if nd not in (2, 3):
        return None
    flip = RAS_FROM_LPS if nd == 3 else np.diag([-1.0, -1.0, 1.0])
    return ImageGeometry(
        shape=[int(s) for s in reader.GetSize()],
        spacing_mm=[float(s) for s in reader.GetSpacing()],
        affine=(flip @ affine_lps_of(reader)).tolist(),
        coordinate_system=CoordinateSystem.RAS if nd == 3 else CoordinateSystem.IMAGE,
    )


def box_from_voxels(voxel: Sequence[Sequence[int]], affine: np.ndarray, score: Optional[float] = None, system=CoordinateSystem.RAS) -> Box:
    """[lo, hi] inclusive voxel indices -> :class:`Box` whose mm are the outer voxel edges in ``affine``'s frame."""
    lo, hi = np.asarray(voxel[0], float), np.asarray(voxel[1], float)
    nd = len(lo)
    mm = box_voxel_to_world(np.concatenate([lo, hi + 1.0]), np.asarray(affine, float))
    return Box(
        voxel=[[int(v) for v in voxel[0]], [int(v) for v in voxel[1]]],
        mm=[[round(float(v), 2) for v in mm[:nd]], [round(float(v), 2) for v in mm[nd:]]],
        coordinate_system=system,
        score=score,
    )
