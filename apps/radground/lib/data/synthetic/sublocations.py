"""Sub-location of a point in its organ: Couinaud segment, kidney third, pancreas part.

Each function also returns a margin (mm to the nearest deciding boundary), so the lesion placer
can keep lesion centres away from boundaries and the stated sub-location stays unambiguous at
every voxel size.

Liver (approximate Couinaud planes, all vertical except the portal plane):
  * segment I (caudate): a box left-anterior of the IVC, from the portal plane upwards;
  * Cantlie's line (gallbladder fossa -> IVC) splits right (V-VIII) from left (II-IV) liver;
  * the falciform plane (x = falciform_x) splits IV (medial) from II/III (lateral);
  * the right hepatic vein line (IVC -> right-anterior) splits anterior (V/VIII) from posterior (VI/VII);
  * the portal plane z = z_portal splits superior (VII, VIII) from inferior (V, VI); the left
    lateral section is split at z_left_split (II superior, III inferior).
Kidney: thirds of the kidney's craniocaudal extent (upper pole / interpolar region / lower pole).
Pancreas: arc-length fraction along the head -> tail centreline (head / body / tail).
"""
from __future__ import annotations

import numpy as np

from .geometry import project_on_polyline

#: Arc-length fractions along the pancreas centreline where head|body and body|tail meet.
PANCREAS_BOUNDS = (0.24, 0.62)
KIDNEY_THIRDS = (1.0 / 3.0, 2.0 / 3.0)


def _signed_line_dist(px, py, a, b, toward):
    """Signed distance of points to the xy line a->b, positive on the side of vector ``toward``."""
    d = np.asarray(b, float) - np.asarray(a, float)
    n = np.array([d[1], -d[0]])
    if n @ np.asarray(toward, float) < 0:
        n = -n
    n /= np.linalg.norm(n)
    return (px - a[0]) * n[0] + (py - a[1]) * n[1]


def liver_segment(pts: np.ndarray, marks: dict) -> tuple[np.ndarray, np.ndarray]:
    """Couinaud segment (roman numeral strings) and boundary margin (mm) for N x 3 points."""
    pts = np.atleast_2d(np.asarray(pts, float))
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    ivc, gb = marks["ivc_xy"], marks["gb_fossa_xy"]
    s_c = _signed_line_dist(x, y, ivc, gb, (1.0, 0.0))  # > 0: left liver
    s_f = x - marks["falciform_x"]  # > 0: left lateral section
    s_r = _signed_line_dist(x, y, ivc, marks["rhv_end_xy"], (0.0, 1.0))  # > 0: right posterior section
    s_p = z - marks["z_portal"]
    s_l = z - marks["z_left_split"]
    seg = np.empty(len(pts), dtype=object)
    margin = np.empty(len(pts))
    left = s_c > 0
    lat = left & (s_f > 0)
    med = left & ~lat
    seg[lat] = np.where(s_l[lat] > 0, "II", "III")
    margin[lat] = np.minimum(s_f[lat], np.abs(s_l[lat]))
    seg[med] = "IV"
    margin[med] = np.minimum(s_c[med], -s_f[med])
    right = ~left
    post = s_r > 0
    sup = s_p > 0
    seg[right & post & sup] = "VII"
    seg[right & post & ~sup] = "VI"
    seg[right & ~post & sup] = "VIII"
    seg[right & ~post & ~sup] = "V"
    margin[right] = np.minimum(np.minimum(-s_c[right], np.abs(s_r[right])), np.abs(s_p[right]))
    lo, hi = np.asarray(marks["caudate_box"][0]), np.asarray(marks["caudate_box"][1])
    d_box = np.minimum(pts - lo, hi - pts).min(axis=1)
    caud = d_box > 0
    seg[caud] = "I"
    margin[caud] = d_box[caud]
    # points just outside the caudate box are close to a boundary as well
    near = ~caud & (d_box > -margin)
    margin[near] = -d_box[near]
    return seg, margin


def kidney_part(z: np.ndarray, z_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """'upper pole' / 'interpolar region' / 'lower pole' by thirds of the kidney's z extent; margin in mm."""
    z = np.atleast_1d(np.asarray(z, float))
    z0, z1 = z_range
    L = max(z1 - z0, 1e-6)
    f = (z - z0) / L
    part = np.where(f > KIDNEY_THIRDS[1], "upper pole", np.where(f < KIDNEY_THIRDS[0], "lower pole", "interpolar region")).astype(object)
    margin = np.min(np.abs(f[:, None] - np.array(KIDNEY_THIRDS)[None, :]), axis=1) * L
    return part, margin


def pancreas_part(pts: np.ndarray, centerline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """'head' / 'body' / 'tail' by position along the gland; margin in mm of centreline length."""
    pts = np.atleast_2d(np.asarray(pts, float))
    t, _ = project_on_polyline(pts, np.asarray(centerline, float))
    L = float(np.sum(np.linalg.norm(np.diff(centerline, axis=0), axis=1)))
    part = np.where(t < PANCREAS_BOUNDS[0], "head", np.where(t < PANCREAS_BOUNDS[1], "body", "tail")).astype(object)
    margin = np.min(np.abs(t[:, None] - np.array(PANCREAS_BOUNDS)[None, :]), axis=1) * L
    return part, margin


def sub_location(organ: str, pts: np.ndarray, anatomy, organ_z_range=None) -> tuple[np.ndarray, np.ndarray]:
    """Canonical sub-location strings (as in labels.SUB_LOCATIONS) and margins for points in ``organ``."""
    if organ == "liver":
        seg, m = liver_segment(pts, anatomy.liver)
        return np.array([f"segment {s}" for s in seg], dtype=object), m
    if organ in ("kidney_right", "kidney_left"):
        return kidney_part(np.atleast_2d(pts)[:, 2], organ_z_range)
    if organ == "pancreas":
        return pancreas_part(pts, anatomy.pancreas_centerline)
    raise ValueError(f"no sub-locations for organ {organ!r}")
