"""Lesions: how many, where, how big, how they look, and their measured ground truth.

Placement works in millimetres against ``phantom.label_at`` (not against a voxel mask), so a
seed gives the same lesions at every size preset. A lesion is an ellipsoid with a noisy
surface, clipped to its organ; it is accepted only when >= 85 % of it lies in the organ, it
keeps >= 5 mm from other lesions, its long axis is 5-60 mm, and its centroid is >= 3 mm from
any sub-location boundary (so its segment / pole / part is unambiguous).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from lib.anatomy.labels import ABDOMEN_ORGANS

from .geometry import Ellipsoid, Grid, SmoothField, random_rotation
from .phantom import Anatomy, label_at
from .sublocations import sub_location

#: Lesion count distribution (0..5 per study).
COUNT_P = (0.12, 0.28, 0.25, 0.17, 0.10, 0.08)
ORGAN_P = {"liver": 0.45, "kidney_right": 0.17, "kidney_left": 0.17, "pancreas": 0.21}
MAX_PER_ORGAN = {"liver": 5, "kidney_right": 3, "kidney_left": 3, "pancreas": 2}
MAX_SIZE_MM = {"liver": 60.0, "kidney_right": 45.0, "kidney_left": 45.0, "pancreas": 32.0}
MIN_SIZE_MM, ABS_MAX_SIZE_MM = 5.0, 60.0
MIN_GAP_MM = 5.0
#: probability that a study with >= 2 lesions has two in one organ at different sub-locations
SAME_ORGAN_PAIR_P = 0.5
DENSITY_P = {
    "liver": {"hypodense": 0.45, "cystic": 0.35, "hyperdense": 0.20},
    "kidney_right": {"cystic": 0.6, "hypodense": 0.2, "hyperdense": 0.2},
    "kidney_left": {"cystic": 0.6, "hypodense": 0.2, "hyperdense": 0.2},
    "pancreas": {"hypodense": 0.6, "cystic": 0.35, "hyperdense": 0.05},
}
_LATTICE_STEP = {"liver": 3.0, "kidney_right": 2.0, "kidney_left": 2.0, "pancreas": 2.0}


@dataclass
class Lesion:
    """One placed lesion: design (shape, HU) and truth measured in mm on a fine lattice."""

    id: int
    organ: str
    density: str  # hypodense | hyperdense | cystic
    enhancement: Optional[str]  # canonical pattern painted/stated: rim-enhancing, arterially enhancing, ...
    shape: Ellipsoid
    hu_design: float
    rim_hu: Optional[float]
    size_mm: list[float]  # true extents along the shape's axes, long axis first
    centroid_mm: np.ndarray  # LPS mm (lattice centroid of the clipped shape)
    volume_ml_true: float
    sub_location: str
    margin_mm: float
    # filled by paint()
    n_voxels: int = 0
    hu_painted: float = float("nan")
    extra: dict = field(default_factory=dict)


class OrganLattice:
    """Points of an organ on a regular mm lattice (cached per organ): candidate lesion centres."""

    def __init__(self, anatomy: Anatomy, organ: str):
        step = _LATTICE_STEP[organ]
        lo, hi = anatomy.bounds[organ]
        axes = [np.arange(lo[d] + step / 2, hi[d], step) for d in range(3)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        lab = label_at(anatomy, pts)
        self.points = pts[lab == ABDOMEN_ORGANS[organ]]
        self.z_range = (float(self.points[:, 2].min() - step / 2), float(self.points[:, 2].max() + step / 2)) if len(self.points) else (0.0, 1.0)
        self.sub, self.margin = sub_location(organ, self.points, anatomy, self.z_range)


def _choose(rng, probs: dict):
    keys = list(probs)
    p = np.array([probs[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _lesion_lattice(shape: Ellipsoid, d1: float):
    step = float(np.clip(d1 / 16.0, 0.35, 2.0))
    lo, hi = shape.bbox()
    axes = [np.arange(lo[d] + step / 2, hi[d], step) for d in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    pts = pts[shape.inside(pts[:, 0].astype(np.float32), pts[:, 1].astype(np.float32), pts[:, 2].astype(np.float32))]
    return pts, step


def _appearance(rng, organ: str, density: str, base: float, d1: float):
    """HU and enhancement pattern for a lesion of this organ/density."""
    rim = None
    if density == "cystic":
        hu = rng.uniform(0, 20)
        enh = "non-enhancing" if rng.random() < 0.5 else None
    elif density == "hypodense":
        delta = rng.uniform(25, 50) if organ == "pancreas" else rng.uniform(40, 80)
        hu = max(base - delta, 20.0)
        u = rng.random()
        if u < 0.25 and d1 >= 12:
            enh = "rim-enhancing"
            rim = hu + rng.uniform(40, 80)
        elif u < 0.45:
            enh = "hypoenhancing"
        else:
            enh = None
    else:
        hu = base + rng.uniform(30, 80)
        u = rng.random()
        enh = "arterially enhancing" if u < 0.35 else ("enhancing" if u < 0.65 else None)
    return float(hu), enh, (None if rim is None else float(rim))


def plan_lesions(rng: np.random.Generator, anatomy: Anatomy) -> list[Lesion]:
    """Draw 0..5 lesions and place them (deterministic given the generator state)."""
    n = int(rng.choice(len(COUNT_P), p=COUNT_P))
    organs: list[str] = []
    pair = n >= 2 and rng.random() < SAME_ORGAN_PAIR_P
    if pair:
        o = _choose(rng, {k: v for k, v in ORGAN_P.items()})
        organs = [o, o]
    while len(organs) < n:
        o = _choose(rng, ORGAN_P)
        if organs.count(o) < MAX_PER_ORGAN[o]:
            organs.append(o)
    lattices: dict[str, OrganLattice] = {}
    placed: list[Lesion] = []
    for idx, organ in enumerate(organs):
        if organ not in lattices:
            lattices[organ] = OrganLattice(anatomy, organ)
        lat = lattices[organ]
        d1 = float(np.exp(rng.uniform(np.log(MIN_SIZE_MM + 0.8), np.log(MAX_SIZE_MM[organ]))))
        avoid_sub = None
        if pair and idx == 1 and placed and placed[0].organ == organ:
            first = placed[0]
            ratio = rng.uniform(0.35, 0.7) if rng.random() < 0.5 else rng.uniform(1.45, 2.5)
            d1 = float(np.clip(first.size_mm[0] * ratio, MIN_SIZE_MM + 0.8, MAX_SIZE_MM[organ]))
            if abs(d1 - first.size_mm[0]) < 0.3 * first.size_mm[0]:  # clipping made them alike: go the other way
                d1 = float(np.clip(first.size_mm[0] * (0.5 if ratio > 1 else 1.8), MIN_SIZE_MM + 0.8, MAX_SIZE_MM[organ]))
            avoid_sub = first.sub_location
        density = _choose(rng, DENSITY_P[organ])
        les = place_lesion(rng, anatomy, lat, organ, d1, density, placed, avoid_sub, lesion_id=len(placed) + 1)
        if les is not None:
            placed.append(les)
    return placed


def place_lesion(rng, anatomy, lat: OrganLattice, organ, d1, density, placed, avoid_sub, lesion_id) -> Optional[Lesion]:
    min_margin = 5.0
    ok = lat.margin >= min_margin
    if avoid_sub is not None:
        ok &= lat.sub != avoid_sub
    cand = np.nonzero(ok)[0]
    if not cand.size:
        return None
    oid = ABDOMEN_ORGANS[organ]
    base = anatomy.organ_hu[organ]
    for attempt in range(48):
        if attempt and attempt % 8 == 0:
            d1 = max(d1 * 0.85, MIN_SIZE_MM + 0.8)
        c = lat.points[cand[int(rng.integers(cand.size))]] + rng.uniform(-1, 1, 3)
        small = d1 < 12
        d2 = d1 * rng.uniform(0.8 if small else 0.6, 1.0)
        d3 = d2 * rng.uniform(0.8 if small else 0.7, 1.0)
        radii = np.array([d1, d2, d3]) / 2.0
        shape = Ellipsoid(c, radii, random_rotation(rng), SmoothField(rng, (0.8 * d1, 2.5 * d1), 4), float(rng.uniform(0.04, 0.14)))
        r_max = radii[0] * (1 + shape.amp)
        if any(np.linalg.norm(c - p.shape.center) < r_max + p.shape.radii[0] * (1 + p.shape.amp) + MIN_GAP_MM for p in placed):
            continue
        pts, step = _lesion_lattice(shape, d1)
        if len(pts) < 8:
            continue
        inside = label_at(anatomy, pts) == oid
        if inside.mean() < 0.85:
            continue
        q = pts[inside]
        cen = q.mean(axis=0)
        sub, margin = sub_location(organ, cen[None], anatomy, lat.z_range)
        if margin[0] < 3.0 or (avoid_sub is not None and sub[0] == avoid_sub):
            continue
        proj = (q - c) @ shape.rot  # coordinates along the shape's own axes
        dims = np.sort(proj.max(axis=0) - proj.min(axis=0) + step)[::-1]
        if not (MIN_SIZE_MM <= dims[0] <= ABS_MAX_SIZE_MM):
            continue
        hu, enh, rim = _appearance(rng, organ, density, base, float(dims[0]))
        return Lesion(
            id=lesion_id,
            organ=organ,
            density=density,
            enhancement=enh,
            shape=shape,
            hu_design=hu,
            rim_hu=rim,
            size_mm=[float(v) for v in dims],
            centroid_mm=cen,
            volume_ml_true=float(len(q) * step**3 / 1000.0),
            sub_location=str(sub[0]),
            margin_mm=float(margin[0]),
        )
    return None


def paint_lesions(lesions: list[Lesion], grid: Grid, img: np.ndarray, org: np.ndarray) -> np.ndarray:
    """Paint lesion HU into ``img`` (in place) and return the uint8 instance map (1..n)."""
    inst = np.zeros(grid.shape, dtype=np.uint8)
    for les in lesions:
        oid = ABDOMEN_ORGANS[les.organ]
        sl = grid.index_range(*les.shape.bbox())
        m = None
        if sl is not None:
            x, y, z = grid.coords(sl)
            m = les.shape.inside(x, y, z) & (org[sl] == oid) & (inst[sl] == 0)
        if sl is None or not m.any():
            # a lesion smaller than a voxel: keep the organ voxel nearest to its centroid
            v = np.clip(np.round(grid.to_vox(les.centroid_mm)).astype(int), 0, np.array(grid.shape) - 1)
            lo, hi = np.maximum(v - 1, 0), np.minimum(v + 2, grid.shape)
            sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
            x, y, z = grid.coords(sl)
            cand = (org[sl] == oid) & (inst[sl] == 0)
            if not cand.any():
                continue
            d2 = (x - les.centroid_mm[0]) ** 2 + (y - les.centroid_mm[1]) ** 2 + (z - les.centroid_mm[2]) ** 2
            d2 = np.where(cand, d2, np.inf)
            m = np.zeros(cand.shape, bool)
            m[np.unravel_index(int(np.argmin(d2)), d2.shape)] = True
        idx = np.nonzero(m)
        xs, ys, zs = x.ravel()[idx[0]], y.ravel()[idx[1]], z.ravel()[idx[2]]
        vals = np.full(idx[0].shape, les.hu_design, dtype=np.float32)
        if les.density != "cystic":
            vals += 6.0 * les.shape.deform(xs, ys, zs)
        if les.rim_hu is not None:
            r2 = les.shape.rho2(xs, ys, zs)
            vals = np.where(r2 > 0.55, np.float32(les.rim_hu), vals)
        img[sl][idx] = vals
        inst[sl][idx] = les.id
        les.n_voxels = int(idx[0].size)
        les.hu_painted = float(vals.mean())
    return inst
