"""Measurements of a finding's mask in the CT: volume, long axis and mean HU.

The same three numbers for every model, measured on the input grid (the DICOM SR reports them, and
:func:`fill_measurements` puts them in the schema where a task measured nothing itself).
The long axis is the mask's largest 3D diameter between voxel centres (max Feret diameter), taken
over the vertices of its convex hull (scipy) so it stays cheap for large masks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from lib.schema.models import GroundingResult, MeasuredAttributes


@dataclass(frozen=True)
class MaskMeasurements:
    volume_ml: float
    long_axis_mm: float
    mean_hu: Optional[float]


def long_axis_mm(mask: np.ndarray, affine: np.ndarray) -> float:
    """Largest distance (mm) between two voxel centres of ``mask`` under ``affine``."""
    idx = np.argwhere(mask)
    if len(idx) < 2:
        return 0.0
    pts = idx @ np.asarray(affine, float)[:3, :3].T
    if len(pts) > 4:
        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:  # flat (coplanar) masks: every point is on the hull
            pass
    if len(pts) > 4000:  # a degenerate hull: subsample rather than build a huge distance matrix
        pts = pts[np.random.default_rng(0).choice(len(pts), 4000, replace=False)]
    return float(pdist(pts).max())


def measure_labels(label: np.ndarray, affine: np.ndarray, ct_hu: Optional[np.ndarray] = None) -> dict[int, MaskMeasurements]:
    """Per non-zero label value: volume (ml), long axis (mm) and mean HU (when the CT is given)."""
    voxel_ml = float(abs(np.linalg.det(np.asarray(affine, float)[:3, :3]))) / 1000.0
    out = {}
    for v in np.unique(label):
        if v == 0:
            continue
        m = label == v
        out[int(v)] = MaskMeasurements(
            volume_ml=round(float(m.sum()) * voxel_ml, 3),
            long_axis_mm=round(long_axis_mm(m, affine), 2),
            mean_hu=round(float(ct_hu[m].mean()), 1) if ct_hu is not None else None,
        )
    return out


def fill_measurements(result: GroundingResult, measured: dict[int, MaskMeasurements]) -> GroundingResult:
    """A copy of ``result`` whose grounded findings carry the missing measured values."""
    findings = []
    for f in result.findings:
        m = measured.get(f.label) if f.grounded else None
        if m is not None:
            cur = f.measured
            f = f.model_copy(
                update={
                    "measured": MeasuredAttributes(
                        volume_ml=cur.volume_ml if cur.volume_ml is not None else m.volume_ml,
                        mean_hu=cur.mean_hu if cur.mean_hu is not None else m.mean_hu,
                        long_axis_mm=cur.long_axis_mm if cur.long_axis_mm is not None else m.long_axis_mm,
                    )
                }
            )
        findings.append(f)
    return result.model_copy(update={"findings": findings})
