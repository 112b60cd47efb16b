"""Lesions: count, size, containment, separation, appearance and sub-location truth."""
from __future__ import annotations

import itertools

import numpy as np
from scipy.spatial import cKDTree

from lib.anatomy.labels import ABDOMEN_ORGANS, LESION_ORGANS, SUB_LOCATIONS
from lib.data.synthetic.sublocations import PANCREAS_BOUNDS, liver_segment


def _lps(s, ijk):
    return np.asarray(s.truth["anatomy"]["origin_lps"]) + np.asarray(ijk, float) * np.asarray(s.spacing)


def test_counts_and_instance_ids(tiny_studies):
    counts = []
    for s in tiny_studies:
        L = s.truth["lesions"]
        counts.append(len(L))
        assert 0 <= len(L) <= 5
        assert [l["id"] for l in L] == list(range(1, len(L) + 1))
        assert sorted(set(np.unique(s.lesions)) - {0}) == [l["id"] for l in L]
    assert min(counts) == 0 and max(counts) >= 4
    assert 1.0 <= np.mean(counts) <= 3.0


def test_lesions_inside_their_organ_and_sized(tiny_studies, small_studies):
    for s in tiny_studies + small_studies:
        for l in s.truth["lesions"]:
            assert l["organ"] in LESION_ORGANS
            assert l["sub_location"][0] in SUB_LOCATIONS[l["organ"]]
            m = s.lesions == l["id"]
            assert m.sum() >= 1 and m.sum() == l["n_voxels"]
            assert (s.organs[m] == ABDOMEN_ORGANS[l["organ"]]).mean() >= 0.8
            assert 5.0 <= l["size_mm"][0] <= 60.0
            assert l["size_mm"] == sorted(l["size_mm"], reverse=True)
            assert l["volume_ml"] > 0 and l["volume_ml_true"] > 0


def test_lesions_do_not_touch(small_studies):
    for s in small_studies:
        pts = {l["id"]: _lps(s, np.argwhere(s.lesions == l["id"])) for l in s.truth["lesions"]}
        for a, b in itertools.combinations(pts, 2):
            d, _ = cKDTree(pts[a]).query(pts[b], k=1)
            assert d.min() >= 4.9, (s.study_id, a, b, d.min())


def test_lesion_attenuation_matches_density(tiny_studies):
    for s in tiny_studies:
        base = s.truth["anatomy"]["organ_hu"]
        for l in s.truth["lesions"]:
            if l["density"] == "cystic":
                assert 0 <= l["hu"] <= 20
            elif l["density"] == "hypodense":
                assert l["hu"] <= base[l["organ"]] - 20
            else:
                assert l["hu"] >= base[l["organ"]] + 25


def test_some_studies_have_two_lesions_in_one_organ(tiny_studies):
    n = 0
    for s in tiny_studies:
        by = {}
        for l in s.truth["lesions"]:
            by.setdefault(l["organ"], []).append(l)
        for ls in by.values():
            if any(a["sub_location"] != b["sub_location"] and max(a["size_mm"][0], b["size_mm"][0]) >= 1.25 * min(a["size_mm"][0], b["size_mm"][0]) for a, b in itertools.combinations(ls, 2)):
                n += 1
                break
    assert n >= 8


def test_kidney_part_matches_centroid(small_studies):
    seen = 0
    for s in small_studies:
        for l in s.truth["lesions"]:
            if not l["organ"].startswith("kidney"):
                continue
            zs = np.nonzero(s.organs == ABDOMEN_ORGANS[l["organ"]])[2]
            z0, z1 = zs.min() - 0.5, zs.max() + 0.5  # organ extent in slice units
            f = (l["centroid_vox"][2] - z0) / (z1 - z0)
            tol = 1.0 / (z1 - z0)  # one slice
            part = l["sub_location"][0]
            if part == "upper pole":
                assert f > 2 / 3 - tol, (s.study_id, l["id"], f)
            elif part == "lower pole":
                assert f < 1 / 3 + tol, (s.study_id, l["id"], f)
            else:
                assert 1 / 3 - tol < f < 2 / 3 + tol, (s.study_id, l["id"], f)
            seen += 1
    assert seen >= 3


def test_pancreas_part_matches_centroid(tiny_studies):
    seen = 0
    for s in tiny_studies:
        cl = np.asarray(s.truth["anatomy"]["pancreas_centerline"])
        for l in s.truth["lesions"]:
            if l["organ"] != "pancreas":
                continue
            x = _lps(s, l["centroid_vox"])[0]
            part = l["sub_location"][0]
            seen += 1
            # head on the patient's right near the duodenum, tail toward the spleen
            if part == "head":
                assert x < cl[2, 0], (s.study_id, x)
            elif part == "tail":
                assert x > cl[2, 0] + 15, (s.study_id, x)
            else:
                assert cl[0, 0] < x < cl[-1, 0]
    assert seen >= 3
    assert PANCREAS_BOUNDS[0] < PANCREAS_BOUNDS[1]


def test_liver_segment_matches_centroid(tiny_studies, small_studies):
    seen = 0
    for s in tiny_studies + small_studies:
        marks = s.truth["anatomy"]["liver_landmarks"]
        for l in s.truth["lesions"]:
            if l["organ"] != "liver":
                continue
            p = _lps(s, l["centroid_vox"])
            seg, margin = liver_segment(p[None], marks)
            voxel_diag = float(np.linalg.norm(s.spacing))
            if f"segment {seg[0]}" != l["sub_location"][0]:
                assert margin[0] < voxel_diag, (s.study_id, l["id"], seg[0], l["sub_location"])
            seg_t = l["sub_location"][0].split()[1]
            # coarse anatomy independent of the plane details
            if seg_t in ("V", "VI", "VII", "VIII"):
                assert p[0] < marks["falciform_x"]
            if seg_t in ("II", "III"):
                assert p[0] > marks["falciform_x"] - voxel_diag
            if seg_t in ("VII", "VIII"):
                assert p[2] > marks["z_portal"] - voxel_diag
            if seg_t in ("V", "VI"):
                assert p[2] < marks["z_portal"] + voxel_diag
            seen += 1
    assert seen >= 20


def test_placer_keeps_lesions_apart_in_mm():
    """Crowd one liver with lesions: every pair of accepted shapes stays >= 5 mm apart."""
    from lib.data.synthetic.lesions import MIN_GAP_MM, OrganLattice, _lesion_lattice, place_lesion
    from lib.data.synthetic.phantom import build_anatomy

    an = build_anatomy(np.random.default_rng(1))
    lat = OrganLattice(an, "liver")
    r = np.random.default_rng(2)
    placed = []
    for i in range(14):
        les = place_lesion(r, an, lat, "liver", 30.0, "hypodense", placed, None, len(placed) + 1)
        if les is not None:
            placed.append(les)
    assert len(placed) >= 6 and MIN_GAP_MM >= 5.0
    clouds = [_lesion_lattice(l.shape, l.size_mm[0])[0] for l in placed]
    for a, b in itertools.combinations(range(len(placed)), 2):
        d, _ = cKDTree(clouds[a]).query(clouds[b], k=1)
        assert d.min() >= 4.0, (a, b, d.min())  # 5 mm gap minus lattice discretisation
