"""A seeded chest CT phantom (thyroid to upper abdomen), drawn in millimetres like the abdominal one.

It paints the structures the anatomy task learns for the 10 Reg2RG regions (004 §4.1): lungs
inside a pleural rim, heart in its pericardium, thoracic aorta and mediastinal fat/vessels,
trachea and main bronchi, esophagus, thyroid, ribs/sternum/clavicles, spine, breasts and the
upper abdomen under the diaphragm. Diffuse findings that change the anatomy itself (cardiomegaly,
pleural and pericardial effusion, hiatal hernia) are parameters of the drawing; focal findings
are placed afterwards by :mod:`chest_findings`.

Frame: LPS millimetres as in :mod:`phantom` (x right -> left, y anterior -> posterior,
z inferior -> superior); z = 0 is the carina.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lib.anatomy.labels import ANATOMY_STRUCTURES as S

from .geometry import Capsule, Ellipsoid, SmoothField, polyline_capsules, rotation
from .phantom import PLEURA_HU, Layer, Predicate, _tex, add_spine

LUNG_IDS = (S["lung_right"], S["lung_left"])


@dataclass
class ChestFindingsPlan:
    """Findings that shape the anatomy itself, drawn before the patient is painted."""

    cardiomegaly: float = 1.0  # heart scale; > 1.2 is reported as cardiomegaly
    effusion: dict = field(default_factory=dict)  # side ('right'/'left') -> fraction of the hemithorax depth filled
    pericardial_mm: float = 0.0  # pericardial fluid thickness
    hernia_mm: float = 0.0  # hiatal hernia diameter (0 = none)


@dataclass
class ChestAnatomy:
    """One drawn chest: layers in paint order, landmarks for lobes/levels, findings shapes."""

    layers: list[Layer]
    z_range: tuple[float, float]
    organ_hu: dict[str, float]
    landmarks: dict
    finding_shapes: dict = field(default_factory=dict)  # name -> (shape, host ids or None)


class Hemithorax:
    """The pleural cavity of one side, shrunk by ``margin`` mm to give the lung inside its pleura.

    Inside the inner chest wall (a superellipse tapering to the apex), above the diaphragm dome
    (a paraboloid, lower posteriorly), lateral to the mediastinum and outside the pericardium.
    """

    def __init__(self, side: int, wall: tuple[float, float, float], apex_z: float, dome: tuple[float, float, float, float],
                 med_x: float, med_hw: callable, heart: Ellipsoid, spine: tuple[float, float, float], margin: float = 0.0):
        self.side = side  # -1 right, +1 left
        self.ax, self.ay_ant, self.ay_post = wall
        self.apex_z, self.dome, self.med_x, self.med_hw = apex_z, dome, med_x, med_hw
        self.heart, self.spine, self.margin = heart, spine, margin

    def diaphragm_z(self, x, y):
        z0, xc, yc, depth = self.dome
        return np.float32(z0) - np.float32(depth) * (((x - np.float32(xc)) / np.float32(110.0)) ** 2 + 0.8 * ((y - np.float32(yc)) / np.float32(95.0)) ** 2)

    def inside(self, x, y, z):
        m = self.margin
        taper = np.clip((np.float32(self.apex_z) - z) / np.float32(90.0), 0.05, 1.0) ** 0.5  # narrows to the apex
        ay = np.where(y < 0, np.float32(self.ay_ant), np.float32(self.ay_post))
        rho = (np.abs(x) / np.float32(self.ax)) ** 2.4 + (np.abs(y) / ay) ** 2.4
        wall = rho ** (1 / 2.4) < taper * (1.0 - np.float32(m) / np.float32(self.ax))
        below_apex = z < np.float32(self.apex_z - m)
        above_dome = z > self.diaphragm_z(x, y) + np.float32(m)
        lateral = self.side * (x - np.float32(self.med_x)) > self.med_hw(y, z) + np.float32(m)
        sx, sy, sr = self.spine
        off_spine = (x - np.float32(sx)) ** 2 + (y - np.float32(sy)) ** 2 > np.float32(sr + m) ** 2
        grown = self.heart.rho2(x, y, z) > np.float32(1.0 + (3.0 + m) / 55.0) ** 2
        return wall & below_apex & above_dome & lateral & off_spine & grown

    def bbox(self):
        lo = np.array([-self.ax if self.side < 0 else self.med_x, -self.ay_ant, self.dome[0] - 2 * self.dome[3] - 40])
        hi = np.array([self.med_x if self.side < 0 else self.ax, self.ay_post, self.apex_z])
        return lo, hi


class NeckedBody:
    """Body outline: a chest superellipse narrowing into the neck above ``neck_z``."""

    def __init__(self, ax, ay_ant, ay_post, neck_z, neck=(62.0, 50.0, 58.0), grow=0.0):
        self.chest = np.array([ax, ay_ant, ay_post], float) + grow
        self.neck = np.array(neck, float) + grow
        self.neck_z = neck_z

    def inside(self, x, y, z):
        t = np.clip((z - np.float32(self.neck_z)) / np.float32(35.0), 0.0, 1.0)
        ax = np.float32(self.chest[0]) + t * np.float32(self.neck[0] - self.chest[0])
        ant = np.float32(self.chest[1]) + t * np.float32(self.neck[1] - self.chest[1])
        post = np.float32(self.chest[2]) + t * np.float32(self.neck[2] - self.chest[2])
        yc = t * np.float32(8.0)  # the neck sits slightly posterior
        yy = y - yc
        ay = np.where(yy < 0, ant, post)
        p = np.where(yy < 0, np.float32(2.2), np.float32(3.0))
        return (np.abs(x / ax) ** p + np.abs(yy / ay) ** p) ** (1.0 / p) < 1.0

    def bbox(self):
        big = 1e4
        return np.array([-self.chest[0] * 1.05, -self.chest[1] * 1.05, -big]), np.array([self.chest[0] * 1.05, self.chest[2] * 1.05, big])


def build_chest_anatomy(rng: np.random.Generator, plan: ChestFindingsPlan) -> ChestAnatomy:
    """Draw one chest. Consumes a fixed sequence of draws from ``rng`` for a given plan."""
    J = lambda s: rng.normal(0.0, s)  # noqa: E731
    g = rng.uniform(0.93, 1.07)
    female = bool(rng.random() < 0.5)
    t_fat = rng.uniform(8.0, 28.0)
    t_mus = rng.uniform(10.0, 16.0)
    t_pl = rng.uniform(6.0, 8.0)  # pleural rim
    hu = {
        "fat": rng.uniform(-110, -85),
        "muscle": rng.uniform(40, 60),
        "blood": rng.uniform(150, 260),
        "myocardium": rng.uniform(90, 130),
        "thyroid": rng.uniform(90, 140),
        "liver": rng.uniform(60, 105),
        "cortical": rng.uniform(550, 700),
        "cancellous": rng.uniform(160, 240),
        "lung": rng.uniform(-880, -820),
        "glandular": rng.uniform(20, 45),
    }
    hu["spleen"] = float(np.clip(hu["liver"] + rng.uniform(-5, 15), 50, 115))
    layers: list[Layer] = []

    def add(name, shape, h, label=0, host=None):
        layers.append(Layer(name, shape, h, label, host))

    # --- coverage and body wall --------------------------------------------------------------
    apex_z = 100 * g + J(6)
    dome_r = -140 * g + J(8)
    dome_l = dome_r - rng.uniform(10, 22)
    z_lo = dome_r - rng.uniform(55, 80)
    z_hi = apex_z + rng.uniform(55, 75)
    neck_z = apex_z + 5
    cav_ax, cav_ant, cav_post = 125 * g, 88 * g, 98 * g
    add("body", NeckedBody(cav_ax + t_mus + t_fat, cav_ant + t_mus + t_fat, cav_post + t_mus + 0.6 * t_fat, neck_z, neck=(70, 46, 130)), hu["fat"])
    # breasts sit in the subcutaneous fat; the chest wall muscle painted next clears their deep part
    b_r = np.array([62, 40, 58]) * g * rng.uniform(0.85, 1.15) if female else np.array([32, 14, 28]) * g * rng.uniform(0.8, 1.2)
    breast_field = SmoothField(rng, (12, 30), 5)
    for sx in (-1, 1):
        c = np.array([sx * 72 * g + J(4), -(cav_ant + t_mus + 0.5 * t_fat), -45 * g + J(5)])

        def breast_hu(x, y, z, f=breast_field):
            return np.where(f(x, y, z) > 0.1, np.float32(hu["glandular"]), np.float32(hu["fat"] + 10))

        add("breast", Ellipsoid(c, b_r, rotation(angles_deg=(0, 0, sx * 10))), breast_hu, S["breast"])
    add("chest_wall", NeckedBody(cav_ax + t_mus, cav_ant + t_mus, cav_post + t_mus, neck_z, neck=(58, 36, 118)), hu["muscle"])
    add("cavity", NeckedBody(cav_ax, cav_ant, cav_post, neck_z, neck=(40, 28, 90)), hu["fat"] + rng.uniform(0, 10))

    # --- bones: spine, ribs, sternum, clavicles ---------------------------------------------
    y_vb = 62 * g + J(2)
    vb_rx, vb_ry = 19 * g, 15 * g
    add_spine(add, rng, g, y_vb, vb_rx, vb_ry, hu)
    rib_z0 = rng.uniform(-10, 10)
    wall_in = NeckedBody(cav_ax - 2, cav_ant - 2, cav_post - 2, neck_z, neck=(38, 26, 88))
    wall_out = NeckedBody(cav_ax + t_mus * 0.7, cav_ant + t_mus * 0.7, cav_post + t_mus * 0.7, neck_z, neck=(50, 32, 100))
    for r in range(12):
        zr = apex_z - 15 - r * 23 * g + rib_z0 * 0.2

        def rib(x, y, z, zr=zr):
            ang = np.arctan2(-y, np.abs(x))  # 0 lateral, +pi/2 anterior
            zc = zr - 35 * g * np.clip(ang / 1.3, -0.4, 1.0)
            band = wall_out.inside(x, y, z) & ~wall_in.inside(x, y, z)
            return band & (np.abs(z - zc) < 5.5 * g) & (ang < 1.25)

        add("rib", Predicate(rib, (-cav_ax - 30, -cav_ant - 30, zr - 55 * g), (cav_ax + 30, cav_post + 30, zr + 20 * g)), hu["cortical"] * 0.75, S["rib_cage"])
    st_top, st_bot = apex_z - 40 * g, dome_r + 25 * g
    sternum = Predicate(
        lambda x, y, z: (np.abs(x) < 14 * g) & (y > -cav_ant - 14) & (y < -cav_ant + 1) & (z < st_top) & (z > st_bot),
        (-15 * g, -cav_ant - 15, st_bot), (15 * g, -cav_ant + 2, st_top),
    )
    add("sternum", sternum, hu["cortical"] * 0.6, S["rib_cage"])
    for sx in (-1, 1):
        a = np.array([sx * 14 * g, -cav_ant - 6, st_top + 4])
        add("clavicle", Capsule(a, np.array([sx * 120 * g, -cav_ant * 0.3, st_top + 30 * g]), 7 * g, 6 * g), hu["cortical"] * 0.7, S["rib_cage"])

    # --- mediastinum and heart ----------------------------------------------------------------
    med_x = 4 * g + J(2)

    def med_hw(y, z):
        """Mediastinal half-width at (y, z): narrow above the heart, wider around the great vessels."""
        base = np.float32(22 * g) + np.float32(12 * g) * np.clip((np.float32(40 * g) - z) / np.float32(60 * g), 0.0, 1.0)
        return base + np.float32(6.0) * (np.abs(y - np.float32(10.0)) < 40)

    hs = plan.cardiomegaly * g * rng.uniform(0.92, 1.08)
    hc = np.array([med_x + 28 * g + (hs - g) * 25, -28 * g, dome_l + 60 * g + J(5)])
    h_r = np.array([62, 50, 56]) * hs
    h_rot = rotation(angles_deg=(0, -15, -35))
    peri = max(plan.pericardial_mm, 0.0)
    sac = Ellipsoid(hc, h_r + 2.5 + peri, h_rot)
    heart = Ellipsoid(hc, h_r, h_rot)
    chambers = Ellipsoid(hc, h_r - 11 * g, h_rot)

    hemi = {}
    spine = (0.0, y_vb, vb_ry + 12 * g)
    for side, name, dome in ((-1, "right", (dome_r, -62 * g, 5 * g, 45 * g)), (1, "left", (dome_l, 62 * g, 5 * g, 45 * g))):
        wall = (cav_ax - 2, cav_ant - 2, cav_post - 2)
        hemi[name] = (
            Hemithorax(side, wall, apex_z, dome, med_x, med_hw, sac, spine, 0.0),
            Hemithorax(side, wall, apex_z, dome, med_x, med_hw, sac, spine, t_pl),
        )

    def diaphragm_z(x, y):
        return np.where(x < np.float32(med_x), hemi["right"][0].diaphragm_z(x, y), hemi["left"][0].diaphragm_z(x, y))

    def below_diaphragm(x, y, z):
        return (z < diaphragm_z(x, y) - np.float32(5.0)) & wall_in.inside(x, y, z)

    mediastinum = Predicate(
        lambda x, y, z: (np.abs(x - np.float32(med_x)) < med_hw(y, z)) & (y > -cav_ant) & (y < y_vb) & (z < apex_z + 30) & (z > diaphragm_z(x, y)),
        (med_x - 45 * g, -cav_ant, z_lo), (med_x + 45 * g, y_vb, apex_z + 30),
    )
    add("mediastinum", mediastinum, hu["fat"] + rng.uniform(5, 20), S["mediastinum"])

    # subdiaphragmatic upper abdomen, clipped by the domes
    liver = Ellipsoid(np.array([-55 * g + J(4), 8 * g, dome_r - 75 * g]), np.array([95, 100, 95]) * g * rng.uniform(0.92, 1.08),
                      rotation(angles_deg=(0, 0, rng.uniform(-8, 8))), SmoothField(rng, (60, 150), 4), 0.06, below_diaphragm)
    add("liver", liver, _tex(hu["liver"], SmoothField(rng, (25, 70), 5), 5), S["liver"])
    spleen = Ellipsoid(np.array([85 * g + J(3), 50 * g + J(3), dome_l - 55 * g]), np.array([24, 48, 52]) * g * rng.uniform(0.85, 1.15),
                       rotation(angles_deg=(0, 0, 30)), clip=below_diaphragm)
    add("spleen", spleen, hu["spleen"], S["spleen"])
    sc = np.array([55 * g + J(4), -20 * g + J(4), dome_l - 50 * g])
    srad = np.array([42, 38, 45]) * g * rng.uniform(0.85, 1.15)
    add("stomach", Ellipsoid(sc, srad, clip=below_diaphragm), hu["muscle"] - 5, S["stomach"])
    add("stomach", Ellipsoid(sc, srad - 4, clip=below_diaphragm), rng.uniform(5, 25), S["stomach"])
    air = sc[1] - srad[1] * rng.uniform(0.2, 0.6)
    add("stomach", Ellipsoid(sc, srad - 4, clip=lambda x, y, z: (y < air) & below_diaphragm(x, y, z)), -1000.0, S["stomach"])
    for _ in range(int(rng.integers(3, 7))):  # normal-sized mediastinal nodes
        c = np.array([med_x + rng.uniform(-20, 20) * g, rng.uniform(-25, 25) * g, rng.uniform(-30, 40) * g])
        add("node", Ellipsoid(c, np.array([5, 4, 6]) * rng.uniform(0.6, 1.1)), hu["muscle"] - 5, S["mediastinum"], (S["mediastinum"],))

    # pleural cavities then lungs (rim = cavity minus lung)
    lung_field = SmoothField(rng, (15, 40), 4)
    for name, (cav, lung) in hemi.items():
        add("pleura", cav, _tex(PLEURA_HU, lung_field, 15), S["pleura"])
        add("lung", lung, _tex(hu["lung"], lung_field, 40), S[f"lung_{name}"])

    add("pericardium", sac, 15.0 if peri > 0 else hu["fat"] + 20, S["heart"])
    add("heart", heart, hu["myocardium"], S["heart"])
    add("chambers", chambers, hu["blood"], S["heart"])
    add("septum", Predicate(lambda x, y, z: chambers.inside(x, y, z) & (np.abs(chambers.local(x, y, z)[1]) < 0.08), *chambers.bbox()), hu["myocardium"], S["heart"])

    # great vessels: thoracic aorta (ascending, arch, descending), pulmonary trunk, SVC
    ar = 13 * g * rng.uniform(0.9, 1.15)
    ao_pts = [
        hc + np.array([-30 * g, 5 * g, 35 * g]),
        np.array([med_x - 12 * g, -22 * g, 25 * g]),
        np.array([med_x - 4 * g, -10 * g, 45 * g]),
        np.array([med_x + 18 * g, 20 * g, 48 * g]),
        np.array([med_x + 24 * g, y_vb - vb_ry - 8 * g, 25 * g]),
        np.array([med_x + 22 * g, y_vb - vb_ry - 10 * g, dome_l - 20 * g]),
        np.array([med_x + 10 * g, y_vb - vb_ry - 12 * g, z_lo - 20]),
    ]
    for c in polyline_capsules(ao_pts, [ar * 1.1, ar * 1.1, ar, ar * 0.9, ar * 0.9, ar * 0.85, ar * 0.85]):
        add("aorta", c, hu["blood"], S["aorta"])
    pa_root = hc + np.array([-5 * g, -25 * g, 40 * g])
    bif = np.array([med_x + 8 * g, 0.0, 8 * g])
    add("pulmonary_trunk", Capsule(pa_root, bif, 13 * g, 12 * g), hu["blood"] - 10, S["mediastinum"])
    hila = {"right": np.array([-55 * g, 8 * g, -8 * g]), "left": np.array([55 * g, 10 * g, 0.0])}
    for name, h in hila.items():
        add("pulmonary_artery", Capsule(bif, h, 10 * g, 8 * g), hu["blood"] - 10, S["mediastinum"], (S["mediastinum"], S["pleura"]))
    add("svc", Capsule(np.array([med_x - 30 * g, -12 * g, apex_z - 10]), np.array([med_x - 30 * g, -8 * g, hc[2] + 40 * g]), 10 * g, 10 * g), hu["blood"] - 40, S["mediastinum"])
    # pulmonary vessels: branching tubes from each hilum, kept inside the lung
    for name, h in hila.items():
        lid = S[f"lung_{name}"]
        sx = -1 if name == "right" else 1
        for _ in range(6):
            d = np.array([sx * rng.uniform(0.4, 1.0), rng.uniform(-0.8, 0.9), rng.uniform(-1.0, 1.0)])
            d /= np.linalg.norm(d)
            mid = h + d * rng.uniform(40, 60) * g
            add("pulmonary_vessel", Capsule(h, mid, 4.5 * g, 2.5 * g), hu["blood"] - 40, None, (lid,))
            for _ in range(2):
                e = d + rng.normal(0, 0.5, 3)
                e /= np.linalg.norm(e)
                add("pulmonary_vessel", Capsule(mid, mid + e * rng.uniform(35, 60) * g, 2.5 * g, 1.2), hu["blood"] - 40, None, (lid,))

    # airways: trachea, carina, main bronchi (wall + air lumen)
    tr_top = np.array([med_x - 2, -10 * g + J(2), z_hi + 20])
    carina = np.array([med_x, 8 * g, 0.0])
    airway = [Capsule(tr_top, carina, 9.5 * g, 9 * g),
              Capsule(carina, np.array([-40 * g, 12 * g, -20 * g]), 7 * g, 6 * g),
              Capsule(carina, np.array([42 * g, 16 * g, -32 * g]), 6.5 * g, 5.5 * g)]
    for c in airway:
        add("airway_wall", c, hu["muscle"], S["trachea_bronchi"])
    for c in airway:
        add("airway_lumen", Capsule(c.a, c.b, c.ra - 2.0, c.rb - 2.0), -1000.0, S["trachea_bronchi"])

    # esophagus behind the trachea, through the hiatus into the stomach
    es_pts = [np.array([med_x + 4, 14 * g, z_hi + 20]), np.array([med_x + 6, 24 * g, 0.0]), np.array([med_x + 10 * g, 34 * g, -90 * g]),
              np.array([med_x + 14 * g, 30 * g, dome_l + 5]), sc + np.array([-15 * g, 5 * g, 10 * g])]
    for c in polyline_capsules(es_pts, [8 * g] * len(es_pts)):
        add("esophagus", c, hu["muscle"] - 5, S["esophagus"])
    if rng.random() < 0.4:  # a little luminal air
        add("esophagus_air", Capsule(es_pts[1], es_pts[2], 2.5, 2.5), -950.0, S["esophagus"], (S["esophagus"],))
    hernia = None
    if plan.hernia_mm > 0:
        hr = plan.hernia_mm / 2.0
        hcen = np.array([med_x + 14 * g, 26 * g, dome_l + hr * 0.8])
        hernia = Ellipsoid(hcen, np.array([hr, hr * 0.9, hr * 1.1]))
        add("hiatal_hernia", hernia, hu["muscle"] - 5, S["esophagus"])
        add("hiatal_hernia", Ellipsoid(hcen, np.array([hr - 3, hr * 0.9 - 3, hr * 1.1 - 3]), clip=lambda x, y, z, c=hcen: y < c[1]), -950.0, S["esophagus"])

    # thyroid lobes and isthmus, anterior-lateral to the trachea
    th_z = apex_z + rng.uniform(15, 35)
    th_field = SmoothField(rng, (10, 25), 4)
    thyroid = {}
    for sx, side in ((-1, "right"), (1, "left")):
        thyroid[side] = Ellipsoid(np.array([med_x + sx * 20 * g, -12 * g, th_z]), np.array([11, 13, 24]) * g * rng.uniform(0.85, 1.15))
        add("thyroid", thyroid[side], _tex(hu["thyroid"], th_field, 10), S["thyroid"])
    add("thyroid", Capsule(np.array([med_x - 12 * g, -22 * g, th_z - 10]), np.array([med_x + 12 * g, -22 * g, th_z - 10]), 5 * g, 5 * g), _tex(hu["thyroid"], th_field, 10), S["thyroid"])
    for c in airway[:1]:  # the trachea runs between the lobes
        add("airway_wall", c, hu["muscle"], S["trachea_bronchi"])
        add("airway_lumen", Capsule(c.a, c.b, c.ra - 2.0, c.rb - 2.0), -1000.0, S["trachea_bronchi"])

    # pleural effusions: dependent fluid filling the posterior cavity, compressing the lung
    effusion_shapes = {}
    for side, frac in plan.effusion.items():
        cav = hemi[side][0]
        level = cav.ay_post - frac * (cav.ay_post + cav.ay_ant)

        def eff(x, y, z, cav=cav, level=level):
            return cav.inside(x, y, z) & (y > np.float32(level))

        shape = Predicate(eff, *cav.bbox())
        effusion_shapes[side] = shape
        add("pleural_effusion", shape, rng.uniform(5, 20), S["pleura"], (S["pleura"], S[f"lung_{side}"]))

    landmarks = {
        "carina": [float(v) for v in carina],
        "apex_z": float(apex_z),
        "dome_z": {"right": float(dome_r), "left": float(dome_l)},
        "hila": {k: [float(x) for x in v] for k, v in hila.items()},
        "y_vertebral_body": float(y_vb),
        "vertebral_body_radii": [float(vb_rx), float(vb_ry)],
        "thyroid_z": float(th_z),
        "female": female,
        "heart_center": [float(v) for v in hc],
        "heart_radii": [float(v) for v in h_r],
    }
    organ_hu = {"lung": float(hu["lung"]), "heart": float(hu["myocardium"]), "blood": float(hu["blood"]), "thyroid": float(hu["thyroid"]),
                "liver": float(hu["liver"]), "pleura": PLEURA_HU, "fat": float(hu["fat"])}
    shapes = {"heart": (sac, None), "hiatal_hernia": (hernia, None), "thyroid": thyroid, "pleural_effusion": effusion_shapes,
              "pericardial_effusion": (sac, (S["heart"],)), "hemithorax": {k: v[1] for k, v in hemi.items()}}
    return ChestAnatomy(layers, (float(z_lo), float(z_hi)), organ_hu, landmarks, shapes)
