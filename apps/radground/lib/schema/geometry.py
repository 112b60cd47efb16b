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
    """4x4 voxel index (ITK order i, j, k) -> LPS mm of a SimpleITK image or header-read reader."""
    direction = np.asarray(image_or_reader.GetDirection(), float).reshape(3, 3)
    a = np.eye(4)
    a[:3, :3] = direction @ np.diag(image_or_reader.GetSpacing())
    a[:3, 3] = image_or_reader.GetOrigin()
    return a


def geometry_of_label_file(path: Optional[str]) -> Optional[ImageGeometry]:
    """The grid (shape, spacing, RAS affine) of a NIfTI/NRRD label file, from its header only."""
    if not path:
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    if reader.GetDimension() != 3:
        return None
    affine = RAS_FROM_LPS @ affine_lps_of(reader)
    return ImageGeometry(
        shape=[int(s) for s in reader.GetSize()],
        spacing_mm=[float(s) for s in reader.GetSpacing()],
        affine=affine.tolist(),
        coordinate_system=CoordinateSystem.RAS,
    )


def box_from_voxels(voxel: Sequence[Sequence[int]], affine: np.ndarray, score: Optional[float] = None, system=CoordinateSystem.RAS) -> Box:
    """[lo, hi] inclusive voxel indices -> :class:`Box` whose mm are the outer voxel edges in ``affine``'s frame."""
    lo, hi = np.asarray(voxel[0], float), np.asarray(voxel[1], float)
    mm = box_voxel_to_world(np.concatenate([lo, hi + 1.0]), np.asarray(affine, float))
    return Box(
        voxel=[[int(v) for v in voxel[0]], [int(v) for v in voxel[1]]],
        mm=[[round(float(v), 2) for v in mm[:3]], [round(float(v), 2) for v in mm[3:]]],
        coordinate_system=system,
        score=score,
    )
