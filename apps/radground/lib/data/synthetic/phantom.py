"""A seeded abdominal CT phantom described in millimetres, rasterised on any grid.

``build_anatomy(rng)`` draws one patient (body habitus, organ sizes/positions, contrast timing)
as an ordered list of layers; ``rasterize`` paints them on a voxel grid (later layers win) and
``label_at`` answers the same question for arbitrary points, which lets the lesion placer work
in millimetres so that every size preset shows the same patient with the same lesions.

Frame: LPS millimetres, x = patient right -> left, y = anterior -> posterior, z = inferior ->
superior; x = 0 is the midline, z = 0 is about the renal hila.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from lib.anatomy.labels import ABDOMEN_ORGANS, ANATOMY_STRUCTURES

from .geometry import Capsule, Ellipsoid, Grid, SmoothField, polyline_capsules, rotation

HU = Union[float, Callable]

#: HU of the pleural rim (parietal pleura + extrapleural fat) around every lung.
PLEURA_HU = -35.0


@dataclass
class Layer:
    """One painted structure: a shape, its HU (constant or a function of position) and its label.

    label: an ABDOMEN_ORGANS id to set, 0 to clear the organ label (e.g. the IVC running through
    the liver), or None to leave the organ label as it is (intrahepatic vessels stay 'liver').
    host: when set, the layer only paints voxels whose current label is one of these ids (a lung
    nodule stays inside the lung, pulmonary vessels never leave it).
    """

    name: str
    shape: object
    hu: HU
    label: Optional[int] = 0
    host: Optional[tuple[int, ...]] = None  # paint only where the label map already holds one of these ids


class SuperEllipseBody:
    """Axial body cross-section: a superellipse, squarer posteriorly, scaled slightly along z."""

    def __init__(self, ax, ay_ant, ay_post, p_ant=2.2, p_post=3.0, z_scale=None, z_lim=(-1e4, 1e4)):
        self.ax, self.ay_ant, self.ay_post = float(ax), float(ay_ant), float(ay_post)
        self.p_ant, self.p_post = p_ant, p_post
        self.z_scale = z_scale
        self.z_lim = z_lim

    def rho(self, x, y):
        ay = np.where(y < 0, np.float32(self.ay_ant), np.float32(self.ay_post))
        p = np.where(y < 0, np.float32(self.p_ant), np.float32(self.p_post))
        return (np.abs(x / np.float32(self.ax)) ** p + np.abs(y / ay) ** p) ** (1.0 / p)

    def inside(self, x, y, z):
        s = self.z_scale(z) if self.z_scale is not None else np.float32(1.0)
        return self.rho(x, y) < s

    def bbox(self):
        m = 1.1
        return (np.array([-self.ax * m, -self.ay_ant * m, self.z_lim[0]]), np.array([self.ax * m, self.ay_post * m, self.z_lim[1]]))


class Union:
    """Points inside any of the parts, optionally clipped (the liver is three lobes, clipped posteriorly)."""

    def __init__(self, parts, clip=None):
        self.parts, self.clip = parts, clip

    def inside(self, x, y, z):
        m = None
        for p in self.parts:
            q = p.inside(x, y, z)
            m = q if m is None else (m | q)
        if self.clip is not None:
            m = m & self.clip(x, y, z)
        return m

    def bbox(self):
        boxes = [p.bbox() for p in self.parts]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


class LobulatedTube:
    """A tube along capsules whose radius is modulated by a smooth field (the lobulated pancreas)."""

    def __init__(self, capsules: list[Capsule], field: SmoothField, amp: float):
        self.capsules, self.field, self.amp = capsules, field, amp

    def inside(self, x, y, z):
        s = 1.0 + np.float32(self.amp) * self.field(x, y, z)
        m = None
        for c in self.capsules:
            t, d2 = c.t_and_dist2(x, y, z)
            r = (np.float32(c.ra) + t * np.float32(c.rb - c.ra)) * s
            q = d2 < r * r
            m = q if m is None else (m | q)
        return m

    def bbox(self):
        boxes = [c.bbox() for c in self.capsules]
        pad = max(max(c.ra, c.rb) for c in self.capsules) * self.amp
        return np.min([b[0] for b in boxes], axis=0) - pad, np.max([b[1] for b in boxes], axis=0) + pad


class Predicate:
    """A shape given directly by an inside() function and a bounding box."""

    def __init__(self, fn, lo, hi):
        self.fn, self.lo, self.hi = fn, np.asarray(lo, float), np.asarray(hi, float)

    def inside(self, x, y, z):
        return self.fn(x, y, z)

    def bbox(self):
        return self.lo, self.hi


@dataclass
class Anatomy:
    """One drawn patient: layers in paint order plus the landmarks sub-locations are computed from."""

    layers: list[Layer]
    z_range: tuple[float, float]  # scan coverage (inferior, superior) in mm
    organ_hu: dict[str, float]  # parenchymal HU per organ (lesion contrast is relative to it)
    liver: dict  # Couinaud landmarks (see sublocations.liver_segment)
    pancreas_centerline: np.ndarray  # head -> tail polyline, N x 3 mm
    bounds: dict = field(default_factory=dict)  # organ name -> (lo, hi) mm bounding boxes


def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _tex(base: float, fld: SmoothField, amp: float):
    def f(x, y, z):
        return np.float32(base) + np.float32(amp) * fld(x, y, z)

    return f


def build_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient. Consumes a fixed sequence of draws from ``rng`` (resolution-independent)."""
    J = lambda s: rng.normal(0.0, s)  # noqa: E731  positional jitter in mm
    g = rng.uniform(0.93, 1.06)  # overall patient scale
    t_fat = rng.uniform(8.0, 30.0)
    t_mus = rng.uniform(9.0, 15.0)
    hu = {
        "fat": rng.uniform(-110, -85),
        "muscle": rng.uniform(40, 60),
        "liver": rng.uniform(60, 105),
        "kidney": rng.uniform(140, 190),
        "pancreas": rng.uniform(45, 90),
        "aorta": rng.uniform(150, 250),
        "gallbladder": rng.uniform(2, 18),
        "cortical": rng.uniform(550, 700),
        "cancellous": rng.uniform(160, 240),
    }
    hu["spleen"] = float(np.clip(hu["liver"] + rng.uniform(-5, 15), 50, 115))
    hu["vein"] = float(np.clip(hu["liver"] + rng.uniform(40, 80), 110, 190))
    hu["medulla"] = hu["kidney"] - rng.uniform(15, 40)

    layers: list[Layer] = []
    add = lambda name, shape, h, label=0: layers.append(Layer(name, shape, h, label))  # noqa: E731

    # --- body wall -------------------------------------------------------------------------
    cav_ax, cav_ant, cav_post = 135 * g, 100 * g, 105 * g
    pelvis_widen = rng.uniform(0.0, 0.06)

    def z_scale(z):
        return np.float32(1.0) + np.float32(pelvis_widen) * np.clip((-z - 40.0) / 100.0, 0, 1).astype(np.float32)

    add("body", SuperEllipseBody(cav_ax + t_mus + t_fat, cav_ant + t_mus + t_fat, cav_post + t_mus + 0.6 * t_fat, z_scale=z_scale), hu["fat"])
    add("abdominal_wall", SuperEllipseBody(cav_ax + t_mus, cav_ant + t_mus, cav_post + t_mus, z_scale=z_scale), hu["muscle"])
    add("cavity", SuperEllipseBody(cav_ax, cav_ant, cav_post, z_scale=z_scale), hu["fat"] + rng.uniform(0, 10))

    # --- landmarks of the central axis -----------------------------------------------------
    y_vb = 55 * g + J(2)  # vertebral body centre
    vb_rx, vb_ry = 22 * g, 17 * g
    aorta_xy = np.array([12 * g + J(3), y_vb - vb_ry - 12 * g + J(1.5)])
    ivc_xy = np.array([-22 * g + J(3), y_vb - vb_ry - 15 * g + J(2)])
    z_bif = -95 * g + J(8)

    # liver geometry first (the scan range is set from the liver dome)
    lc = np.array([-62 * g + J(4), 0 * g + J(4), 72 * g + J(5)])
    lsize = rng.uniform(0.9, 1.1) * g
    right_lobe = Ellipsoid(lc, np.array([64, 78, 72]) * lsize * rng.uniform(0.95, 1.05, 3), rotation(angles_deg=tuple(rng.uniform(-6, 6, 3))))
    left_c = np.array([0 * g + J(4), -32 * g + J(3), lc[2] + 20 * g + J(4)])
    left_lobe = Ellipsoid(left_c, np.array([62, 42, 42]) * lsize * rng.uniform(0.9, 1.1, 3), rotation(angles_deg=(0, 0, rng.uniform(-8, 8))))
    caud_c = np.array([ivc_xy[0] + 12 * g, ivc_xy[1] - 20 * g, lc[2] + 8 * g])
    caudate = Ellipsoid(caud_c, np.array([26, 22, 38]) * lsize)
    liver_top = float(max(right_lobe.bbox()[1][2], left_lobe.bbox()[1][2]))
    liver_def = SmoothField(rng, (60, 160), 5)
    for e in (right_lobe, left_lobe, caudate):
        e.deform, e.amp = liver_def, 0.08
    mid_x = -5.0 * g

    def liver_clip(x, y, z):
        ymax = 28 * g + 55 * g * _smoothstep((np.abs(x - mid_x) - 25 * g) / (45 * g))
        return y < ymax

    z_hi = liver_top + rng.uniform(5, 25)
    z_lo = z_hi - rng.uniform(240, 320)

    # --- ribs (lower thoracic cage around the upper abdomen) -------------------------------
    wall_in = SuperEllipseBody(cav_ax - 2, cav_ant - 2, cav_post - 2)
    wall_out = SuperEllipseBody(cav_ax + t_mus * 0.7, cav_ant + t_mus * 0.7, cav_post + t_mus * 0.7)
    rib_z0 = lc[2] + rng.uniform(-10, 10)
    for r in range(6):
        zr = rib_z0 + 26 * g * (r - 2)

        def rib(x, y, z, zr=zr):
            ang = np.arctan2(-y, np.abs(x))  # 0 lateral, +pi/2 anterior
            zc = zr - 30 * g * np.clip(ang / 1.2, -0.3, 1.0)
            band = (wall_in.rho(x, y) > 1.0) & (wall_out.rho(x, y) < 1.0)
            return band & (np.abs(z - zc) < 5.5 * g) & (ang < 1.15) & (ang > -1.1)

        add("rib", Predicate(rib, (-cav_ax - 30, -cav_ant - 30, zr - 45 * g), (cav_ax + 30, cav_post + 30, zr + 15 * g)), hu["cortical"] * 0.75, ANATOMY_STRUCTURES["rib_cage"])

    # --- paraspinal and psoas muscles ------------------------------------------------------
    for sx in (-1, 1):
        add("paraspinal", Ellipsoid(np.array([sx * 36 * g, y_vb + 38 * g, 0.0]), np.array([25 * g, 19 * g, 1e4])), hu["muscle"] + 5)
    for sx in (-1, 1):
        pts = [(sx * 20 * g, y_vb - 5, 42 * g), (sx * 30 * g, y_vb - 3, -20 * g), (sx * 44 * g, y_vb - 10, -100 * g), (sx * 58 * g, y_vb - 20, -180 * g)]
        for c in polyline_capsules(pts, [3, 16 * g, 23 * g, 22 * g]):
            add("psoas", c, hu["muscle"])

    # --- lung bases ------------------------------------------------------------------------
    lung_tex = SmoothField(rng, (15, 40), 4)
    for sx, dz in ((-1, 0.0), (1, -12.0)):
        lung_c = np.array([sx * 80 * g, 50 * g, liver_top + 70 * g + dz])
        # the same 6 mm pleural rim (parietal pleura + extrapleural fat) the chest phantom paints
        add("pleura", Ellipsoid(lung_c, np.array([62, 66, 100]) * g + 6.0 * g), PLEURA_HU, ANATOMY_STRUCTURES["pleura"])
        add("lung", Ellipsoid(lung_c, np.array([62, 66, 100]) * g), _tex(-850, lung_tex, 40), ANATOMY_STRUCTURES["lung_right" if sx < 0 else "lung_left"])

    # --- hollow viscera: bowel, colon, stomach, duodenum, bladder --------------------------
    feces = SmoothField(rng, (8, 20), 5)

    def colon_content(x, y, z):
        f = feces(x, y, z)
        return np.where(f > 0.15, np.float32(-950), np.float32(-60) + np.float32(120) * f)

    def tube(name, pts, radius, content, wall=4.0):
        pts = [np.asarray(p, float) for p in pts]
        for c in polyline_capsules(pts, [radius] * len(pts)):
            add(name, c, hu["muscle"] - 10)
        for c in polyline_capsules(pts, [radius - wall] * len(pts)):
            add(name, c, content)

    gj = lambda p: np.asarray(p, float) * g + rng.normal(0, 4, 3)  # noqa: E731
    tube("colon", [gj((-95, 5, -90)), gj((-98, 0, 15)), gj((-82, -35, 30)), gj((-30, -72, 5)), gj((30, -70, 8)), gj((85, -30, 50)), gj((98, 20, 45)), gj((100, 30, -60)), gj((70, 0, -125)), gj((20, 40, -160)), gj((0, 75, -200))], 19 * g, colon_content)
    n_loops = int(rng.integers(7, 12))
    for _ in range(n_loops):
        p = np.array([rng.uniform(-70, 70), rng.uniform(-80, 10), rng.uniform(-150, -15)]) * g
        pts = [p.copy()]
        for _ in range(3):
            p = p + rng.normal(0, 1, 3) * 22 * g
            p = np.clip(p, np.array([-75, -85, -160]) * g, np.array([75, 20, -5]) * g)
            pts.append(p.copy())
        r = rng.uniform(10, 14) * g
        u = rng.random()
        content = rng.uniform(5, 30) if u < 0.7 else (-900.0 if u < 0.85 else colon_content)
        tube("bowel", pts, r, content, wall=3.0)
    sc = np.array([55 * g + J(4), -15 * g + J(4), lc[2] + 18 * g + J(5)])
    srad = np.array([38, 34, 48]) * g * rng.uniform(0.85, 1.15)
    srot = rotation(angles_deg=(0, 25, -30))
    stomach_id = ANATOMY_STRUCTURES["stomach"]
    add("stomach", Ellipsoid(sc, srad, srot), hu["muscle"] - 5, stomach_id)
    air_level = sc[1] - srad[1] * rng.uniform(0.2, 0.7)
    add("stomach", Ellipsoid(sc, srad - 4, srot), rng.uniform(5, 25), stomach_id)
    add("stomach", Ellipsoid(sc, srad - 4, srot, clip=lambda x, y, z: y < air_level), -1000.0, stomach_id)
    tube("duodenum", [gj((-18, -40, 40)), gj((-45, -25, 36)), gj((-56, -8, 24)), gj((-57, -2, -8)), gj((-35, 12, -24)), gj((0, 12, -28)), gj((25, 5, -15)), gj((28, -5, 2))], 11 * g, rng.uniform(10, 30), wall=3.0)
    add("bladder", Ellipsoid(np.array([0, -15, -205]) * g, np.array([48, 40, 38]) * g), rng.uniform(5, 15))
    # iliac wings
    for sx in (-1, 1):
        wing = Ellipsoid(np.array([sx * 75 * g, 45 * g, -165 * g]), np.array([52, 48, 65]) * g)

        def iliac(x, y, z, wing=wing, sx=sx):
            r2 = wing.rho2(x, y, z)
            return (r2 < 1.0) & (r2 > 0.8) & (sx * x > 50 * g) & (y > 25 * g)

        lo, hi = wing.bbox()
        add("iliac", Predicate(iliac, lo, hi), hu["cortical"] * 0.7)

    # --- adrenal glands --------------------------------------------------------------------
    for sx, base in ((-1, ivc_xy), (1, aorta_xy)):
        top = np.array([sx * 38 * g, y_vb - 10, 62 * g]) + rng.normal(0, 2, 3)
        for leg in (np.array([sx * 8, -14, -22]), np.array([sx * 14, 6, -20])):
            add("adrenal", Capsule(top, top + leg * g, 2.5, 2.0), hu["muscle"] - 10)

    # --- liver with hepatic/portal veins, gallbladder -------------------------------------
    liver_tex = SmoothField(rng, (25, 70), 5)
    add("liver", Union([right_lobe, left_lobe, caudate], clip=liver_clip), _tex(hu["liver"], liver_tex, 5), ABDOMEN_ORGANS["liver"])
    gb_c = np.array([-38 * g + J(4), -40 * g + J(4), lc[2] - 42 * g + J(4)])
    falc_x = 6 * g + J(3)
    z_portal = lc[2] - 6 * g
    rhv_end = np.array([-120 * g, -15 * g + J(5)])
    top = np.array([ivc_xy[0], ivc_xy[1], liver_top - 25 * g])
    for end, r in (
        ((rhv_end[0] + 10, rhv_end[1] + 5, lc[2] - 5), 5.0),
        ((gb_c[0], gb_c[1] + 15, gb_c[2] + 30 * g), 4.5),
        ((falc_x, -45 * g, left_c[2] + 5), 4.0),
    ):
        add("hepatic_vein", Capsule(top, np.asarray(end, float), r * g, 2.0), hu["vein"], None)
    conf = np.array([-2 * g, aorta_xy[1] - 22 * g, 16 * g])  # splenoportal confluence
    hilum = np.array([-30 * g, -2 * g, z_portal])
    add("portal_vein", Capsule(conf, hilum, 7 * g, 6 * g), hu["vein"], None)
    for end in ((-70 * g, -2 * g, z_portal), (-80 * g, -35 * g, z_portal - 22 * g), (-95 * g, 35 * g, z_portal - 12 * g)):
        add("portal_vein", Capsule(hilum, np.asarray(end, float), 5 * g, 2.5), hu["vein"], None)
    for end in ((falc_x, -30 * g, z_portal + 8 * g), (falc_x + 30 * g, -45 * g, z_portal + 25 * g)):
        add("portal_vein", Capsule(hilum, np.asarray(end, float), 4.5 * g, 2.0), hu["vein"], None)
    gb_rot = rotation(angles_deg=(-35 + rng.uniform(-10, 10), 10, 0))
    gb = Ellipsoid(gb_c, np.array([15, 15, 36]) * g * rng.uniform(0.8, 1.15), gb_rot, SmoothField(rng, (40, 90), 3), 0.05)
    add("gallbladder", gb, hu["gallbladder"], ABDOMEN_ORGANS["gallbladder"])

    # --- spleen ----------------------------------------------------------------------------
    sp = Ellipsoid(
        np.array([88 * g + J(3), 42 * g + J(4), lc[2] + 4 * g + J(5)]),
        np.array([22, 48, 55]) * g * rng.uniform(0.85, 1.2),
        rotation(angles_deg=(rng.uniform(-15, 5), 0, 30 + rng.uniform(-8, 8))),
        SmoothField(rng, (50, 120), 4),
        0.07,
    )
    add("spleen", sp, _tex(hu["spleen"], SmoothField(rng, (20, 60), 4), 4), ABDOMEN_ORGANS["spleen"])

    # --- kidneys (cortex/medulla, sinus fat, renal veins) ----------------------------------
    kid_def = SmoothField(rng, (60, 140), 4)
    for name, sx, zc in (("kidney_right", -1, -6 * g), ("kidney_left", 1, 6 * g)):
        kc = np.array([sx * 68 * g + J(3), 58 * g + J(3), zc + J(6)])
        kr = np.array([25, 22, 55]) * g * rng.uniform(0.88, 1.12) * rng.uniform(0.95, 1.05, 3)
        krot = rotation(angles_deg=(12 + rng.uniform(-5, 5), sx * (12 + rng.uniform(-5, 5)), sx * (-30 + rng.uniform(-8, 8))))
        kid = Ellipsoid(kc, kr, krot, kid_def, 0.04)

        def khu(x, y, z, kid=kid):
            r2 = kid.rho2(x, y, z)
            return np.where(r2 > 0.55, np.float32(hu["kidney"]), np.float32(hu["medulla"]))

        add(name, kid, khu, ABDOMEN_ORGANS[name])
        medial = krot @ np.array([-sx * 1.0, 0, 0])  # local -x toward the midline after rotation
        hil = kc + medial * kr[0] * 0.75 + np.array([0, -6 * g, 0])
        add("renal_sinus", Ellipsoid(hil, np.array([11, 9, 24]) * g, krot), hu["fat"] + 20, 0)
        vein_end = np.array([ivc_xy[0], ivc_xy[1] - 2, hil[2]]) if sx < 0 else np.array([ivc_xy[0], ivc_xy[1] - 2, hil[2] + 4])
        pts = [hil, vein_end] if sx < 0 else [hil, np.array([aorta_xy[0], aorta_xy[1] - 14 * g, hil[2] + 3]), vein_end]
        for c in polyline_capsules(pts, [5 * g] * len(pts)):
            add("renal_vein", c, hu["vein"], None)

    # --- SMA / SMV, pancreas ---------------------------------------------------------------
    add("sma", Capsule(np.array([aorta_xy[0], aorta_xy[1] - 8, 22 * g]), np.array([aorta_xy[0] - 2, aorta_xy[1] - 30 * g, -80 * g]), 4 * g, 3 * g), hu["aorta"])
    add("smv", Capsule(conf, np.array([aorta_xy[0] - 14 * g, aorta_xy[1] - 34 * g, -80 * g]), 6 * g, 4 * g), hu["vein"])
    pj = lambda p, s=3: np.asarray(p, float) * g + rng.normal(0, s, 3)  # noqa: E731
    cl = np.array([pj((-32, -5, 8)), pj((-18, -14, 14)), pj((8, -14, 18)), pj((40, -2, 24)), pj((62, 16, 30), 4), pj((78, 30, 36), 4)])
    cl[:, 1] = np.minimum(cl[:, 1], aorta_xy[1] - 22 * g + np.array([20, 0, 0, 12, 40, 60]) * g)
    prad = np.array([16, 12, 11, 10.5, 9.5, 8]) * g * rng.uniform(0.85, 1.15)
    caps = polyline_capsules(cl, prad)
    caps.append(Capsule(cl[0], cl[0] + np.array([10, 16, -12]) * g, prad[0] * 0.8, 7 * g))  # uncinate
    add("pancreas", LobulatedTube(caps, SmoothField(rng, (12, 24), 5), 0.22), _tex(hu["pancreas"], SmoothField(rng, (8, 16), 4), 6), ABDOMEN_ORGANS["pancreas"])

    # --- IVC, aorta, iliac vessels ---------------------------------------------------------
    ivc_pts = [np.array([ivc_xy[0], ivc_xy[1], z_hi + 30]), np.array([ivc_xy[0], ivc_xy[1] + 2, z_bif - 15 * g])]
    add("ivc", Capsule(ivc_pts[0], ivc_pts[1], 11 * g, 11 * g), hu["vein"] - 10, 0)
    ar = 11.5 * g * rng.uniform(0.9, 1.15)
    add("aorta", Capsule(np.array([aorta_xy[0], aorta_xy[1], z_hi + 30]), np.array([aorta_xy[0] - 4, aorta_xy[1] + 2, z_bif]), ar, ar * 0.9), hu["aorta"], ABDOMEN_ORGANS["aorta"])
    for sx in (-1, 1):
        a = np.array([aorta_xy[0] - 4, aorta_xy[1] + 2, z_bif])
        add("iliac_artery", Capsule(a, np.array([sx * 45 * g, aorta_xy[1] + 25 * g, z_bif - 90 * g]), 7 * g, 6 * g), hu["aorta"], 0)
        v = ivc_pts[1]
        add("iliac_vein", Capsule(v, np.array([sx * 40 * g, aorta_xy[1] + 32 * g, z_bif - 95 * g]), 8 * g, 7 * g), hu["vein"] - 10, 0)

    add_spine(add, rng, g, y_vb, vb_rx, vb_ry, hu)

    liver_marks = {
        "ivc_xy": [float(ivc_xy[0]), float(ivc_xy[1])],
        "gb_fossa_xy": [float(gb_c[0]), float(gb_c[1])],
        "falciform_x": float(falc_x),
        "z_portal": float(z_portal),
        "z_left_split": float(left_c[2]),
        "rhv_end_xy": [float(rhv_end[0]), float(rhv_end[1])],
        "caudate_box": [
            [float(ivc_xy[0]) + 3, float(ivc_xy[1]) - 32 * g, float(z_portal) - 5],
            [float(ivc_xy[0]) + 30 * g, float(ivc_xy[1]) + 2, float(z_portal) + 40 * g],
        ],
    }
    organ_hu = {
        "liver": float(hu["liver"]),
        "spleen": float(hu["spleen"]),
        "kidney_right": float(hu["kidney"]),
        "kidney_left": float(hu["kidney"]),
        "pancreas": float(hu["pancreas"]),
        "aorta": float(hu["aorta"]),
        "gallbladder": float(hu["gallbladder"]),
    }
    bounds = {}
    for ly in layers:
        if ly.label and ly.name in ABDOMEN_ORGANS and ly.name != "vertebra":
            lo, hi = ly.shape.bbox()
            if ly.name in bounds:
                lo, hi = np.minimum(lo, bounds[ly.name][0]), np.maximum(hi, bounds[ly.name][1])
            bounds[ly.name] = (np.asarray(lo, float), np.asarray(hi, float))
    return Anatomy(layers, (float(z_lo), float(z_hi)), organ_hu, liver_marks, cl, bounds)


def add_spine(add, rng: np.random.Generator, g: float, y_vb: float, vb_rx: float, vb_ry: float, hu: dict) -> None:
    """Vertebral bodies (cortical rim, cancellous core), discs, posterior elements and canal along z.

    Shared by the abdominal and the chest phantoms; draws exactly two values from ``rng``.
    """
    level = 33 * g
    disc_t = 8 * g
    z_ref = rng.uniform(0, level)
    canal_y = y_vb + vb_ry + 11 * g
    vert_tex = SmoothField(rng, (6, 14), 4)

    def vb_rho(x, y):
        return np.sqrt((x / np.float32(vb_rx)) ** 2 + ((y - np.float32(y_vb)) / np.float32(vb_ry)) ** 2)

    def vb_inside(x, y, z):
        return vb_rho(x, y) < 1.0

    def vb_hu(x, y, z):
        return np.where(vb_rho(x, y) > 0.86, np.float32(hu["cortical"]), np.float32(hu["cancellous"]) + 40 * vert_tex(x, y, z))

    big = 1e4
    vid = ABDOMEN_ORGANS["vertebra"]
    add("vertebral_body", Predicate(vb_inside, (-vb_rx, y_vb - vb_ry, -big), (vb_rx, y_vb + vb_ry, big)), vb_hu, vid)

    def phase(z):
        return np.mod(z - np.float32(z_ref), np.float32(level))

    def disc(x, y, z):
        return (vb_rho(x, y) < 1.03) & (phase(z) < disc_t)

    add("disc", Predicate(disc, (-vb_rx * 1.1, y_vb - vb_ry * 1.1, -big), (vb_rx * 1.1, y_vb + vb_ry * 1.1, big)), 85.0, 0)

    def posterior_elements(x, y, z):
        ph = phase(z)
        arch_z = (ph > disc_t + 2) & (ph < level - 3)
        d = np.sqrt(x * x + (y - np.float32(canal_y)) ** 2)
        ring = (d < 16 * g) & (d > 8.5 * g) & (y > y_vb + vb_ry - 4)
        spinous = (np.abs(x) < 4.5 * g) & (y > canal_y + 8 * g) & (y < canal_y + 28 * g - 0.3 * (ph - disc_t))
        trans = (np.abs(x) > 10 * g) & (np.abs(x) < 40 * g) & (np.abs(y - canal_y + 6 * g) < 5 * g) & (ph > disc_t + 8) & (ph < level - 10)
        return (ring & arch_z) | (spinous & arch_z) | trans

    add("posterior_elements", Predicate(posterior_elements, (-42 * g, y_vb, -big), (42 * g, canal_y + 42 * g, big)), hu["cortical"] * 0.8, vid)

    def canal(x, y, z):
        return x * x + (y - np.float32(canal_y)) ** 2 < (8.5 * g) ** 2

    add("canal", Predicate(canal, (-9 * g, canal_y - 9 * g, -big), (9 * g, canal_y + 9 * g, big)), 15.0, 0)


def rasterize(anatomy: Anatomy, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Paint the layers on ``grid``: float32 HU image (air outside) and uint8 organ label map."""
    img = np.full(grid.shape, -1000.0, dtype=np.float32)
    org = np.zeros(grid.shape, dtype=np.uint8)
    for ly in anatomy.layers:
        lo, hi = ly.shape.bbox()
        sl = grid.index_range(lo, hi)
        if sl is None:
            continue
        x, y, z = grid.coords(sl)
        m = ly.shape.inside(x, y, z)
        full = tuple(s.stop - s.start for s in sl)
        if m.shape != full:
            m = np.broadcast_to(m, full)
        if ly.host is not None:
            m = m & np.isin(org[sl], ly.host)
        sub = img[sl]
        if callable(ly.hu):
            idx = np.nonzero(m)
            if not idx[0].size:
                continue
            xs, ys, zs = x.ravel()[idx[0]], y.ravel()[idx[1]], z.ravel()[idx[2]]
            sub[idx] = ly.hu(xs, ys, zs)
            if ly.label is not None:
                org[sl][idx] = ly.label
        else:
            sub[m] = np.float32(ly.hu)
            if ly.label is not None:
                org[sl][m] = ly.label
    return img, org


def label_at(anatomy: Anatomy, pts: np.ndarray) -> np.ndarray:
    """Organ label (ABDOMEN_ORGANS id, 0 = none) at N x 3 points in mm, exactly as rasterize paints it."""
    pts = np.asarray(pts, dtype=np.float32)
    out = np.zeros(len(pts), dtype=np.uint8)
    if not len(pts):
        return out
    plo, phi = pts.min(axis=0), pts.max(axis=0)
    started = False
    for ly in anatomy.layers:
        if ly.label is None or (ly.label == 0 and not started):
            continue  # label-0 layers painted before any organ cannot change the label
        started = True
        lo, hi = ly.shape.bbox()
        if np.any(hi < plo) or np.any(lo > phi):
            continue
        sel = np.nonzero(np.all((pts >= lo.astype(np.float32)) & (pts <= hi.astype(np.float32)), axis=1))[0]
        if not sel.size:
            continue
        q = pts[sel]
        m = np.broadcast_to(ly.shape.inside(q[:, 0], q[:, 1], q[:, 2]), sel.shape)
        if ly.host is not None:
            m = m & np.isin(out[sel], ly.host)
        out[sel[m]] = ly.label
    return out
