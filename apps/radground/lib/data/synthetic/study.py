"""One synthetic study: phantom + lesions + report + truth, deterministic in (seed, preset).

The seed feeds four independent streams (anatomy, lesions, report, image noise), so the
anatomy, the lesions (placed in mm) and the report are the same at every size preset; only the
voxel grid and the noise differ. Same seed and preset give byte-identical arrays and report.

Array convention: index [i, j, k] with i = patient right -> left (LPS +x), j = anterior ->
posterior (LPS +y), k = inferior -> superior. The NIfTI affine (RAS) is diag(-sx, -sy, sz) with
the world position of voxel (0, 0, 0) as origin; ``centroid_mm`` in the truth is in that RAS
world frame (``affine @ [i, j, k, 1]``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from lib.anatomy.labels import ABDOMEN_ORGANS
from lib.reports.schema import ellipsoid_volume_ml

from .geometry import Grid
from .lesions import paint_lesions, plan_lesions
from .phantom import build_anatomy, rasterize
from .report_writer import write_report

#: Size presets: in-plane matrix and voxel spacing (mm); all cover a 384 mm field of view.
PRESETS: dict[str, dict] = {
    "default": {"matrix": 256, "spacing": (1.5, 1.5, 2.5)},
    "small": {"matrix": 128, "spacing": (3.0, 3.0, 5.0)},
    "tiny": {"matrix": 64, "spacing": (6.0, 6.0, 10.0)},
}
#: Gaussian point-spread (sigma, mm) applied before noise: partial-volume blur.
PSF_SIGMA_MM = (0.9, 0.9, 1.2)


#: Body part -> study id prefix. Abdominal ids keep the original "synth_" prefix.
BODY_PREFIX = {"abdomen": "synth", "chest": "chest"}


def study_id_for(seed: int, body: str = "abdomen") -> str:
    return f"{BODY_PREFIX[body]}_{int(seed):05d}"


@dataclass
class Study:
    study_id: str
    seed: int
    preset: str
    image: np.ndarray = field(repr=False)  # int16 HU, [i, j, k]
    organs: np.ndarray = field(repr=False)  # uint8 ABDOMEN_ORGANS ids
    lesions: np.ndarray = field(repr=False)  # uint8 lesion instance ids 1..n
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    affine: np.ndarray = field(default=None, repr=False)  # 4x4 RAS
    report: str = field(default="", repr=False)
    truth: dict = field(default_factory=dict, repr=False)
    regions: np.ndarray | None = field(default=None, repr=False)  # uint8 REGION_IDS (chest studies)
    body: str = "abdomen"


def make_grid(z_range: tuple[float, float], preset: str) -> Grid:
    cfg = PRESETS[preset]
    n = cfg["matrix"]
    sx, sy, sz = cfg["spacing"]
    z_lo, z_hi = z_range
    nz = max(int(round((z_hi - z_lo) / sz)), 8)
    return Grid((n, n, nz), (sx, sy, sz), (-(n - 1) / 2.0 * sx, -(n - 1) / 2.0 * sy, float(z_lo)))


def affine_for(grid: Grid) -> np.ndarray:
    """RAS affine: LPS (x, y, z) -> RAS (-x, -y, z)."""
    sx, sy, sz = grid.spacing
    ox, oy, oz = grid.origin
    return np.array([[-sx, 0, 0, -ox], [0, -sy, 0, -oy], [0, 0, sz, oz], [0, 0, 0, 1]], dtype=np.float64)


def _r(v, nd=2):
    return float(round(float(v), nd))


def _round_tree(x, nd=2):
    if isinstance(x, dict):
        return {k: _round_tree(v, nd) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_round_tree(v, nd) for v in x]
    return _r(x, nd)


def render(img: np.ndarray, spacing, r_noise: np.random.Generator) -> tuple[np.ndarray, float]:
    """Partial-volume blur, then Gaussian noise of a drawn level: the int16 HU image and the noise SD."""
    sigma = [s_mm / s for s_mm, s in zip(PSF_SIGMA_MM, spacing)]
    img = gaussian_filter(img, sigma=sigma, truncate=3.0)
    noise_sd = float(r_noise.uniform(10.0, 20.0))
    img += r_noise.standard_normal(img.shape, dtype=np.float32) * np.float32(noise_sd)
    return np.clip(np.rint(img), -1024, 3071).astype(np.int16), noise_sd


def generate_study(seed: int, preset: str = "default", body: str = "abdomen") -> Study:
    """Build the study for ``seed`` at ``preset`` (see module docstring); ``body`` is abdomen or chest."""
    if body == "chest":
        from .chest_study import generate_chest_study

        return generate_chest_study(seed, preset)
    if body != "abdomen":
        raise ValueError(f"unknown body part {body!r}; choose abdomen or chest")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 0x5A7D]).spawn(4)]
    r_anat, r_les, r_rep, r_noise = streams
    anatomy = build_anatomy(r_anat)
    lesions = plan_lesions(r_les, anatomy)
    grid = make_grid(anatomy.z_range, preset)
    img, org = rasterize(anatomy, grid)
    inst = paint_lesions(lesions, grid, img, org)
    spacing = grid.spacing
    text, sentences, links = write_report(r_rep, lesions, spacing[2])

    image, noise_sd = render(img, spacing, r_noise)

    affine = affine_for(grid)
    vox_ml = float(np.prod(spacing)) / 1000.0
    les_truth = []
    for les in lesions:
        idx = np.nonzero(inst == les.id)
        cv = np.array([float(np.mean(a)) for a in idx]) if idx[0].size else grid.to_vox(les.centroid_mm)
        cmm = (affine @ np.append(cv, 1.0))[:3]
        link = links[les.id]
        les_truth.append(
            {
                "id": les.id,
                "organ": les.organ,
                "sub_location": [les.sub_location],
                "size_mm": [_r(v, 1) for v in les.size_mm],
                "reported_size_mm": link["reported_size_mm"],
                "reported_size_text": link["reported_size_text"],
                "volume_ml": _r(idx[0].size * vox_ml, 3),
                "volume_ml_true": _r(les.volume_ml_true, 3),
                "volume_ml_ellipsoid": _r(ellipsoid_volume_ml(les.size_mm), 3),
                "n_voxels": int(idx[0].size),
                "hu": _r(les.hu_design, 1),
                "hu_image": _r(float(image[idx].mean()), 1) if idx[0].size else None,
                "reported_hu": link["reported_hu"],
                "density": les.density,
                "reported_density": link["reported_density"],
                "enhancement": link["enhancement"],
                "true_enhancement": les.enhancement,
                "lesion_type": link["lesion_type"],
                "hedge": link["hedge"],
                "centroid_vox": [_r(v, 2) for v in cv],
                "centroid_mm": [_r(v, 2) for v in cmm],
                "sub_location_margin_mm": _r(les.margin_mm, 1),
                "sentence_index": link["sentence_index"],
                "span": link["span"],
                "template": link["template"],
            }
        )
    truth = {
        "study_id": study_id_for(seed),
        "seed": int(seed),
        "preset": preset,
        "region": "abdomen",
        "shape": [int(v) for v in image.shape],
        "spacing": [float(v) for v in spacing],
        "affine": [[float(v) for v in row] for row in affine],
        "organ_labels": dict(ABDOMEN_ORGANS),
        "noise_sd": _r(noise_sd, 2),
        "lesions": les_truth,
        "sentences": sentences,
        "anatomy": {
            "frame": "LPS mm (x right->left, y anterior->posterior, z inferior->superior); voxel [i,j,k] = origin_lps + [i,j,k] * spacing",
            "origin_lps": [float(v) for v in grid.origin],
            "liver_landmarks": _round_tree(anatomy.liver),
            "pancreas_centerline": [[_r(v, 1) for v in p] for p in anatomy.pancreas_centerline],
            "organ_hu": {k: _r(v, 1) for k, v in anatomy.organ_hu.items()},
        },
    }
    return Study(study_id_for(seed), int(seed), preset, image, org, inst, tuple(float(s) for s in spacing), affine, text, truth)
