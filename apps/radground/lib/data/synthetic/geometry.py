"""Shapes defined in millimetres, so one patient can be drawn at any voxel size.

Every shape is an implicit function ``inside(x, y, z) -> bool array`` over LPS millimetre
coordinates (x: patient right -> left, y: anterior -> posterior, z: inferior -> superior) that
broadcasts: the rasteriser passes 1-D axis vectors shaped (n,1,1), (1,n,1), (1,1,n) and the
lesion placer passes flat point lists. Nothing here draws random numbers after construction, so
evaluating a shape never changes the generator state.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A voxel grid in the patient frame: voxel (i, j, k) sits at origin + (i, j, k) * spacing (LPS mm)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axis(self, d: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        hi = self.shape[d] if hi is None else hi
        return (self.origin[d] + np.arange(lo, hi, dtype=np.float64) * self.spacing[d]).astype(np.float32)

    def index_range(self, lo_mm: np.ndarray, hi_mm: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Voxel slices covering the mm box [lo, hi] (None when it misses the grid)."""
        out = []
        for d in range(3):
            a = int(np.floor((lo_mm[d] - self.origin[d]) / self.spacing[d]))
            b = int(np.ceil((hi_mm[d] - self.origin[d]) / self.spacing[d])) + 1
            a, b = max(a, 0), min(b, self.shape[d])
            if b <= a:
                return None
            out.append(slice(a, b))
        return tuple(out)  # type: ignore[return-value]

    def coords(self, sl: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = self.axis(0, sl[0].start, sl[0].stop)[:, None, None]
        y = self.axis(1, sl[1].start, sl[1].stop)[None, :, None]
        z = self.axis(2, sl[2].start, sl[2].stop)[None, None, :]
        return x, y, z

    def to_mm(self, ijk: np.ndarray) -> np.ndarray:
        return np.asarray(self.origin) + np.asarray(ijk, dtype=np.float64) * np.asarray(self.spacing)

    def to_vox(self, xyz: np.ndarray) -> np.ndarray:
        return (np.asarray(xyz, dtype=np.float64) - np.asarray(self.origin)) / np.asarray(self.spacing)


class SmoothField:
    """A sum of random plane waves: a smooth, bounded (|f| <= 1) field with a chosen wavelength.

    Used to deform organ surfaces and to give parenchyma a low-frequency texture. It is a
    closed-form function of position in mm, hence identical at every resolution.
    """

    def __init__(self, rng: np.random.Generator, wavelength: tuple[float, float], n: int = 5):
        dirs = rng.normal(size=(n, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        lam = rng.uniform(wavelength[0], wavelength[1], size=n)
        self.k = (2 * np.pi / lam)[:, None] * dirs
        self.phase = rng.uniform(0, 2 * np.pi, size=n)
        w = rng.uniform(0.5, 1.0, size=n)
        self.w = w / w.sum()

    def __call__(self, x, y, z):
        out = None
        for (kx, ky, kz), ph, w in zip(self.k, self.phase, self.w):
            term = np.float32(w) * np.sin(np.float32(kx) * x + np.float32(ky) * y + np.float32(kz) * z + np.float32(ph))
            out = term if out is None else out + term
        return out


def rotation(rng: np.random.Generator | None = None, angles_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Rotation matrix from x-y-z Euler angles in degrees (columns are the local axes in LPS)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
        ]
    )


@dataclass
class Ellipsoid:
    """An ellipsoid (optionally rotated, surface-deformed by a SmoothField, clipped by a predicate)."""

    center: np.ndarray
    radii: np.ndarray
    rot: np.ndarray = field(default_factory=lambda: np.eye(3))
    deform: SmoothField | None = None
    amp: float = 0.0
    clip: object = None  # callable(x, y, z) -> bool mask of points to keep

    def local(self, x, y, z):
        """Coordinates in the ellipsoid frame, scaled so the surface is |u| = 1."""
        c = self.center.astype(np.float32)
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        r = self.rot.astype(np.float32)
        u = (r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz) / np.float32(self.radii[0])
        v = (r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz) / np.float32(self.radii[1])
        w = (r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz) / np.float32(self.radii[2])
        return u, v, w

    def rho2(self, x, y, z):
        u, v, w = self.local(x, y, z)
        r2 = u * u + v * v + w * w
        if self.deform is not None and self.amp:
            s = 1.0 + np.float32(self.amp) * self.deform(x, y, z)
            r2 = r2 / (s * s)
        return r2

    def inside(self, x, y, z):
        m = self.rho2(x, y, z) < 1.0
        if self.clip is not None:
            m = m & self.clip(x, y, z)
        return m

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        ext = np.abs(self.rot) @ (np.asarray(self.radii) * (1.0 + abs(self.amp)))
        return self.center - ext, self.center + ext


@dataclass
class Capsule:
    """A tube segment from a to b whose radius goes linearly from ra to rb (vessels, bowel)."""

    a: np.ndarray
    b: np.ndarray
    ra: float
    rb: float

    def t_and_dist2(self, x, y, z):
        a = self.a.astype(np.float32)
        ab = (self.b - self.a).astype(np.float32)
        L2 = np.float32(max(float(ab @ ab), 1e-6))
        dx, dy, dz = x - a[0], y - a[1], z - a[2]
        t = np.clip((dx * ab[0] + dy * ab[1] + dz * ab[2]) / L2, 0.0, 1.0)
        px, py, pz = dx - t * ab[0], dy - t * ab[1], dz - t * ab[2]
        return t, px * px + py * py + pz * pz

    def inside(self, x, y, z):
        t, d2 = self.t_and_dist2(x, y, z)
        r = np.float32(self.ra) + t * np.float32(self.rb - self.ra)
        return d2 < r * r

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        r = max(self.ra, self.rb)
        return np.minimum(self.a, self.b) - r, np.maximum(self.a, self.b) + r


def polyline_capsules(points, radii) -> list[Capsule]:
    pts = [np.asarray(p, dtype=np.float64) for p in points]
    return [Capsule(pts[i], pts[i + 1], float(radii[i]), float(radii[i + 1])) for i in range(len(pts) - 1)]


def project_on_polyline(points: np.ndarray, poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc-length fraction (0..1) of the closest polyline point and the distance, for N x 3 points."""
    seg = poly[1:] - poly[:-1]
    seglen = np.linalg.norm(seg, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seglen)])
    best_d = np.full(len(points), np.inf)
    best_s = np.zeros(len(points))
    for i in range(len(seg)):
        rel = points - poly[i]
        t = np.clip(rel @ seg[i] / max(seglen[i] ** 2, 1e-9), 0, 1)
        d = np.linalg.norm(rel - t[:, None] * seg[i], axis=1)
        better = d < best_d
        best_d = np.where(better, d, best_d)
        best_s = np.where(better, cum[i] + t * seglen[i], best_s)
    return best_s / cum[-1], best_d
