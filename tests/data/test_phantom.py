"""The synthetic volume: determinism, presets, geometry, HU ranges and organ positions."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from lib.anatomy.labels import ABDOMEN_ORGANS
from lib.data.synthetic.study import PRESETS, generate_study

from .conftest import study


def _digest(s) -> str:
    h = hashlib.sha256()
    for a in (s.image, s.organs, s.lesions, s.affine):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(s.report.encode())
    h.update(json.dumps(s.truth, sort_keys=True).encode())
    return h.hexdigest()


def test_same_seed_is_byte_identical():
    a, b = generate_study(7, "tiny"), generate_study(7, "tiny")
    assert _digest(a) == _digest(b)


def test_different_seeds_differ():
    digests = {_digest(study(s)) for s in range(6)}
    assert len(digests) == 6
    a, b = study(0), study(1)
    assert a.report != b.report
    assert a.organs.shape != b.organs.shape or not np.array_equal(a.organs, b.organs)


def test_presets_show_the_same_patient():
    """Anatomy and lesions are defined in mm: tiny and small share lesions, sizes and report."""
    for seed in (3, 6, 11):
        t, s = study(seed, "tiny"), study(seed, "small")
        key = lambda st: [(l["organ"], l["sub_location"], l["size_mm"], l["reported_size_mm"]) for l in st.truth["lesions"]]  # noqa: E731
        assert key(t) == key(s)
        strip = lambda st: [x["text"] for x in st.truth["sentences"] if "slice thickness" not in x["text"]]  # noqa: E731
        assert strip(t) == strip(s)
        # same physical field of view
        assert t.image.shape[0] * t.spacing[0] == pytest.approx(s.image.shape[0] * s.spacing[0])


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_grid_dtype_and_affine(preset):
    s = study(2, preset)
    cfg = PRESETS[preset]
    n = cfg["matrix"]
    assert s.image.dtype == np.int16 and s.organs.dtype == np.uint8 and s.lesions.dtype == np.uint8
    assert s.image.shape[:2] == (n, n) and s.organs.shape == s.image.shape == s.lesions.shape
    assert s.spacing == tuple(cfg["spacing"])
    assert np.allclose(np.diag(s.affine)[:3], [-cfg["spacing"][0], -cfg["spacing"][1], cfg["spacing"][2]])
    assert s.study_id == "synth_00002" and s.truth["study_id"] == s.study_id
    assert s.truth["shape"] == list(s.image.shape)


def test_slice_counts_per_preset():
    nz = [study(s).image.shape[2] for s in range(12)]
    assert min(nz) >= 24 and max(nz) <= 32 and len(set(nz)) > 1  # ~24-32 slices, varies per seed
    d = generate_study(4, "default")
    assert d.image.shape[:2] == (256, 256) and 96 <= d.image.shape[2] <= 128


def test_hu_ranges_per_organ(small_studies):
    ranges = {
        "liver": (45, 120),
        "spleen": (40, 125),
        "kidney_right": (90, 200),
        "kidney_left": (90, 200),
        "pancreas": (25, 100),
        "aorta": (130, 260),
        "vertebra": (150, 750),
        "gallbladder": (-15, 35),
    }
    for s in small_studies:
        for organ, (lo, hi) in ranges.items():
            m = binary_erosion(s.organs == ABDOMEN_ORGANS[organ]) & (s.lesions == 0)
            if m.sum() < 5:
                m = (s.organs == ABDOMEN_ORGANS[organ]) & (s.lesions == 0)
            med = float(np.median(s.image[m]))
            assert lo <= med <= hi, (s.study_id, organ, med)
        assert np.median(s.image[:3, :3, :]) < -900  # air outside the body
        body = (s.image > -500) & (s.organs == 0)
        assert np.percentile(s.image[body], 20) < -50  # plenty of fat
        assert s.image.min() >= -1024 and s.image.max() <= 3071


def _centroid(s, organ):
    idx = np.nonzero(s.organs == ABDOMEN_ORGANS[organ])
    assert idx[0].size, organ
    return np.array([float(np.mean(a)) for a in idx])


def test_organs_present_and_placed(tiny_studies):
    for s in tiny_studies[:30]:
        c = {o: _centroid(s, o) for o in ABDOMEN_ORGANS}
        i, j, k = 0, 1, 2
        mid = (s.image.shape[0] - 1) / 2.0
        assert c["liver"][i] < mid < c["spleen"][i]  # liver on the patient's right (small i)
        assert c["kidney_right"][i] < mid < c["kidney_left"][i]
        assert c["gallbladder"][i] < mid
        assert c["aorta"][i] > c["vertebra"][i]  # aorta left of the spine
        assert c["vertebra"][j] > c["aorta"][j] and c["vertebra"][j] > c["liver"][j]  # spine posterior
        assert c["kidney_right"][j] > c["pancreas"][j] and c["aorta"][j] > c["pancreas"][j]  # pancreas anterior
        assert c["liver"][k] > c["kidney_right"][k]  # liver above the kidneys
        assert c["spleen"][j] > c["liver"][j]  # spleen posterior
