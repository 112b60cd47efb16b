"""Chest findings: which ones a study has, where they sit, how they look, and their instance masks.

Diffuse findings that reshape anatomy (cardiomegaly, pleural and pericardial effusion, hiatal
hernia) go into the :class:`ChestFindingsPlan` the phantom is drawn with; focal ones (lung
nodules and masses, consolidation/atelectasis, emphysema, thyroid nodule, degenerative spine
change) are placed afterwards, in millimetres, inside the structure they belong to, and painted
as extra layers that never leave it. Each finding gets an instance id; the instance map is what
``labels/final`` holds for a chest study.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from lib.anatomy.labels import ANATOMY_STRUCTURES as S

from .chest_phantom import LUNG_IDS, ChestAnatomy, ChestFindingsPlan
from .geometry import Capsule, Ellipsoid, Grid, SmoothField, random_rotation
from .phantom import Layer, Predicate, label_at

#: Finding kind -> the Reg2RG region whose report section describes it.
FINDING_REGION: dict[str, str] = {
    "nodule": "lung",
    "mass": "lung",
    "emphysema": "lung",
    "consolidation": "lung",
    "atelectasis": "lung",
    "pleural_effusion": "pleura",
    "cardiomegaly": "heart",
    "pericardial_effusion": "heart",
    "thyroid_nodule": "thyroid",
    "degenerative": "bone",
    "hiatal_hernia": "esophagus",
}


@dataclass
class ChestFinding:
    id: int
    kind: str
    structure: str  # the structure key it lies in
    side: Optional[str] = None
    location: str = ""  # "right upper lobe", "left thyroid lobe", "thoracic spine", ...
    size_mm: list = field(default_factory=list)
    severity: Optional[str] = None  # small / moderate / large, mild / moderate / severe
    attributes: dict = field(default_factory=dict)  # e.g. {"density": "ground-glass"}
    shape: object = field(default=None, repr=False)
    host: Optional[tuple] = field(default=None, repr=False)

    @property
    def region(self) -> str:
        return FINDING_REGION[self.kind]


def draw_plan(r: np.random.Generator) -> tuple[ChestFindingsPlan, dict]:
    """Decide which findings the study has (before the anatomy is drawn). Fixed number of draws."""
    u = r.random(11)
    want = {
        "nodules": int(r.integers(1, 4)) if u[0] < 0.45 else 0,
        "mass": u[1] < 0.12,
        "emphysema": u[2] < 0.2,
        "consolidation": u[3] < 0.15,
        "atelectasis": u[4] < 0.15,
        "thyroid_nodule": u[5] < 0.15,
        "degenerative": u[6] < 0.35,
    }
    plan = ChestFindingsPlan()
    if u[7] < 0.2:
        plan.cardiomegaly = float(r.uniform(1.22, 1.4))
    if u[8] < 0.25:
        sides = [["right"], ["left"], ["right", "left"]][int(r.integers(0, 3))]
        sev = str(r.choice(["small", "moderate", "large"], p=[0.5, 0.35, 0.15]))
        frac = {"small": (0.12, 0.2), "moderate": (0.28, 0.38), "large": (0.45, 0.55)}[sev]
        plan.effusion = {s: float(r.uniform(*frac)) for s in sides}
        want["effusion_severity"] = sev
    if u[9] < 0.1:
        plan.pericardial_mm = float(r.uniform(6, 14))
    if u[10] < 0.12:
        plan.hernia_mm = float(r.uniform(30, 55))
    return plan, want


def lung_lobe(p: np.ndarray, landmarks: dict) -> tuple[str, str]:
    """(side, lobe name) of a point in the lungs from the fissure planes (oblique ~45 deg, horizontal on the right)."""
    x, y, z = (float(v) for v in p)
    side = "right" if x < landmarks["carina"][0] else "left"
    hx, hy, hz = landmarks["hila"][side]
    if z < hz - 10 + (y - hy):  # below the oblique fissure: posterior-inferior
        return side, f"{side} lower lobe"
    if side == "right" and z < hz - 20 and y < hy + 15:
        return side, "right middle lobe"
    return side, f"{side} upper lobe"


def _sample_inside(r, anatomy, ids, lo, hi, radius=0.0, n=400, ok=None):
    """A point whose label is in ``ids`` with (when radius > 0) 14 surface probes also inside."""
    dirs = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]] + [list(v) for v in np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).T.reshape(-1, 3) / np.sqrt(3)], float)
    for _ in range(8):
        pts = r.uniform(lo, hi, size=(n, 3))
        lab = label_at(anatomy, pts)
        cand = pts[np.isin(lab, ids)]
        if ok is not None and len(cand):
            cand = cand[[ok(c) for c in cand]]
        for c in cand[:20]:
            if radius <= 0 or np.isin(label_at(anatomy, c + dirs * radius), ids).all():
                return c
    return None


def place_findings(r: np.random.Generator, anatomy: ChestAnatomy, plan: ChestFindingsPlan, want: dict) -> list[ChestFinding]:
    """Place every finding of ``plan``/``want`` and append the focal ones as layers of ``anatomy``."""
    out: list[ChestFinding] = []
    lm = anatomy.landmarks

    def new(kind, structure, **kw):
        f = ChestFinding(len(out) + 1, kind, structure, **kw)
        out.append(f)
        return f

    def lung_box(side=None):
        c = np.array(lm["carina"])
        lo = np.array([-140.0, -100.0, lm["dome_z"]["left"] - 40])
        hi = np.array([140.0, 110.0, lm["apex_z"]])
        if side == "right":
            hi[0] = c[0]
        elif side == "left":
            lo[0] = c[0]
        return lo, hi

    # emphysema first: the focal findings painted after it stay visible inside it
    if want["emphysema"]:
        sev = str(r.choice(["mild", "moderate", "severe"]))
        fld = SmoothField(r, (8, 16), 6)
        thr = {"mild": 0.55, "moderate": 0.42, "severe": 0.3}[sev]
        z_cut = lm["carina"][2] - 30

        def emph(x, y, z, fld=fld, thr=thr):
            return (fld(x, y, z) > np.float32(thr)) & (z > np.float32(z_cut))

        f = new("emphysema", "lung_right", side="both", location="upper lobes", severity=sev, attributes={"pattern": "centrilobular"})
        lo, hi = lung_box()
        f.shape, f.host = Predicate(emph, lo, hi), LUNG_IDS
        anatomy.layers.append(Layer("emphysema", f.shape, -975.0, None, f.host))
    # lung nodules and mass
    for _ in range(want["nodules"]):
        d = float(np.round(r.uniform(4, 14)))
        c = _sample_inside(r, anatomy, LUNG_IDS, *lung_box(), radius=d / 2 + 2)
        if c is None:
            continue
        side, lobe = lung_lobe(c, lm)
        density = str(r.choice(["solid", "solid", "part-solid", "ground-glass"]))
        hu = {"solid": r.uniform(20, 45), "part-solid": r.uniform(-300, -150), "ground-glass": r.uniform(-600, -450)}[density]
        f = new("nodule", f"lung_{side}", side=side, location=lobe, size_mm=[d, round(d * r.uniform(0.75, 1.0))], attributes={"density": density})
        f.shape = Ellipsoid(c, np.array([d, f.size_mm[1], d]) / 2.0, random_rotation(r))
        f.host = (S[f"lung_{side}"],)
        anatomy.layers.append(Layer("nodule", f.shape, float(hu), None, f.host))
    if want["mass"]:
        d = float(np.round(r.uniform(32, 60)))
        c = _sample_inside(r, anatomy, LUNG_IDS, *lung_box(), radius=d / 2)
        if c is not None:
            side, lobe = lung_lobe(c, lm)
            f = new("mass", f"lung_{side}", side=side, location=lobe, size_mm=[d, round(d * r.uniform(0.7, 0.95))], attributes={"margin": str(r.choice(["spiculated", "lobulated"]))})
            f.shape = Ellipsoid(c, np.array([d, f.size_mm[1], d * 0.9]) / 2.0, random_rotation(r), SmoothField(r, (10, 25), 4), 0.18)
            f.host = (S[f"lung_{side}"],)
            anatomy.layers.append(Layer("mass", f.shape, float(r.uniform(25, 50)), None, f.host))
    for kind in ("consolidation", "atelectasis"):
        if not want[kind]:
            continue
        side = str(r.choice(["right", "left"]))
        hz = lm["hila"][side][2]
        c = _sample_inside(r, anatomy, (S[f"lung_{side}"],), *lung_box(side), radius=8.0, ok=lambda p, hz=hz: p[2] < hz - 20 and p[1] > 10)
        if c is None:
            continue
        _, lobe = lung_lobe(c, lm)
        if kind == "consolidation":
            radii = r.uniform(18, 32, 3)
            hu = r.uniform(20, 45)
        else:  # plate-like, dependent
            radii = np.array([r.uniform(25, 40), r.uniform(6, 10), r.uniform(10, 16)])
            hu = r.uniform(0, 30)
        f = new(kind, f"lung_{side}", side=side, location=lobe, size_mm=[round(2 * float(v)) for v in sorted(radii, reverse=True)[:2]])
        f.shape, f.host = Ellipsoid(c, radii, random_rotation(r)), (S[f"lung_{side}"],)
        anatomy.layers.append(Layer(kind, f.shape, float(hu), None, f.host))
    if want["thyroid_nodule"]:
        side = str(r.choice(["right", "left"]))
        lobe = anatomy.finding_shapes["thyroid"][side]
        d = float(np.round(r.uniform(8, 22)))
        c = lobe.center + r.normal(0, 1, 3) * np.array([2, 2, 6])
        f = new("thyroid_nodule", "thyroid", side=side, location=f"{side} thyroid lobe", size_mm=[d, round(d * r.uniform(0.7, 0.95))])
        f.shape, f.host = Ellipsoid(c, np.array([f.size_mm[1], f.size_mm[1], d]) / 2.0), (S["thyroid"],)
        anatomy.layers.append(Layer("thyroid_nodule", f.shape, float(anatomy.organ_hu["thyroid"] - r.uniform(50, 90)), None, f.host))
    if want["degenerative"]:
        y_vb = lm["y_vertebral_body"]
        rx, ry = lm["vertebral_body_radii"]
        spurs = []
        for _ in range(int(r.integers(2, 5))):
            z = r.uniform(lm["dome_z"]["right"], lm["apex_z"] - 20)
            sx = float(r.choice([-1, 1]))
            a = np.array([sx * rx * 0.7, y_vb - ry * 0.7, z])
            spurs.append(Capsule(a, a + np.array([sx * 5, -5, r.choice([-1, 1]) * 4]), 3.0, 1.5))
        f = new("degenerative", "vertebra", location="thoracic spine", severity=str(r.choice(["mild", "moderate"])), attributes={"osteophytes": len(spurs)})

        def spur(x, y, z, spurs=spurs):
            m = None
            for c in spurs:
                q = c.inside(x, y, z)
                m = q if m is None else (m | q)
            return m

        lo = np.min([c.bbox()[0] for c in spurs], axis=0)
        hi = np.max([c.bbox()[1] for c in spurs], axis=0)
        f.shape = Predicate(spur, lo, hi)
        anatomy.layers.append(Layer("osteophyte", f.shape, 600.0, S["vertebra"]))
    # diffuse findings already drawn into the anatomy
    if plan.effusion:
        for side in plan.effusion:
            f = new("pleural_effusion", "pleura", side=side, location=f"{side} pleural space", severity=want["effusion_severity"])
            f.shape, f.host = anatomy.finding_shapes["pleural_effusion"][side], (S["pleura"],)
    if plan.cardiomegaly > 1.0:
        f = new("cardiomegaly", "heart", location="heart", severity="mild" if plan.cardiomegaly < 1.3 else "moderate")
        f.shape, f.host = anatomy.finding_shapes["heart"][0], (S["heart"],)
    if plan.pericardial_mm > 0:
        f = new("pericardial_effusion", "heart", location="pericardium", size_mm=[round(plan.pericardial_mm)],
                severity="small" if plan.pericardial_mm < 10 else "moderate")
        f.shape, f.host = anatomy.finding_shapes["pericardial_effusion"]
    if plan.hernia_mm > 0:
        f = new("hiatal_hernia", "esophagus", location="esophageal hiatus", size_mm=[round(plan.hernia_mm)],
                severity="small" if plan.hernia_mm < 40 else "moderate")
        f.shape, f.host = anatomy.finding_shapes["hiatal_hernia"][0], (S["esophagus"],)
    return out


def shape_mask(shape, grid: Grid) -> np.ndarray:
    """Boolean mask of ``shape`` on ``grid``."""
    out = np.zeros(grid.shape, dtype=bool)
    sl = grid.index_range(*shape.bbox())
    if sl is None:
        return out
    m = shape.inside(*grid.coords(sl))
    out[sl] = np.broadcast_to(m, tuple(s.stop - s.start for s in sl))
    return out


def instance_map(findings: list[ChestFinding], grid: Grid, structures: np.ndarray) -> np.ndarray:
    """uint8 finding instance map. Later findings win, so a pericardial effusion is cut out of the enlarged heart."""
    inst = np.zeros(grid.shape, dtype=np.uint8)
    for f in findings:
        m = shape_mask(f.shape, grid)
        if f.kind == "pericardial_effusion":
            heart = f.shape
            inner = Ellipsoid(heart.center, heart.radii - 2.5 - f.size_mm[0], heart.rot)
            m &= ~shape_mask(inner, grid)
        if f.kind == "degenerative":
            m &= structures == S["vertebra"]
        elif f.host is not None:
            m &= np.isin(structures, f.host)
        inst[m] = f.id
    return inst
