"""TotalSegmentator as the anatomy backend: the class mapping, the availability check, the fallback,
and the infer path through a stand-in ``totalsegmentator`` package (the real one is not installed here)."""
from __future__ import annotations

import logging
import os
import sys
import types

import nibabel as nib
import numpy as np
import pytest

from lib.anatomy.labels import ANATOMY_STRUCTURES, CHEST_REGIONS, REGION_IDS, region_map
from lib.anatomy.totalseg import (
    TOTALSEG_ABSENT_REGIONS,
    TOTALSEG_ABSENT_STRUCTURES,
    TOTALSEG_DROPPED,
    TOTALSEG_STRUCTURES,
    TOTALSEG_TO_STRUCTURE,
    TOTALSEG_TOTAL_V2,
    TotalSegmentatorPrior,
    map_label_map,
    totalseg_available,
)

TS_ID = {name: i for i, name in TOTALSEG_TOTAL_V2.items()}
S = ANATOMY_STRUCTURES


# --------------------------------------------------------------------------- mapping
def test_v2_class_table_matches_totalsegmentator_ids():
    assert len(TOTALSEG_TOTAL_V2) == 117
    assert (TS_ID["spleen"], TS_ID["liver"], TS_ID["heart"], TS_ID["aorta"], TS_ID["rib_left_1"], TS_ID["costal_cartilages"]) == (1, 5, 51, 52, 92, 117)
    assert (TS_ID["vertebrae_S1"], TS_ID["vertebrae_L1"], TS_ID["vertebrae_C1"], TS_ID["sternum"]) == (26, 31, 50, 116)


def test_every_class_maps_to_a_real_structure_or_is_dropped():
    assert set(TOTALSEG_TO_STRUCTURE.values()) <= set(ANATOMY_STRUCTURES)
    mapped = [n for n in TOTALSEG_TOTAL_V2.values() if n in TOTALSEG_TO_STRUCTURE]
    assert len(mapped) == 83 and len(TOTALSEG_DROPPED) == 34
    assert {"colon", "duodenum", "humerus_left", "brain", "inferior_vena_cava", "spinal_cord"} <= set(TOTALSEG_DROPPED)


def test_fake_label_map_maps_to_structure_ids():
    names = ["liver", "spleen", "kidney_right", "kidney_cyst_left", "pancreas", "aorta", "gallbladder", "stomach",
             "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "lung_upper_lobe_left",
             "lung_lower_lobe_left", "trachea", "esophagus", "thyroid_gland", "heart", "atrial_appendage_left",
             "superior_vena_cava", "brachiocephalic_trunk", "vertebrae_L3", "vertebrae_T7", "vertebrae_C2", "sacrum",
             "rib_left_5", "rib_right_12", "sternum", "clavicula_right", "colon", "femur_left"]
    expected = ["liver", "spleen", "kidney_right", "kidney_left", "pancreas", "aorta", "gallbladder", "stomach",
                "lung_right", "lung_right", "lung_right", "lung_left", "lung_left", "trachea_bronchi", "esophagus",
                "thyroid", "heart", "heart", "mediastinum", "mediastinum", "vertebra", "vertebra", "vertebra",
                "vertebra", "rib_cage", "rib_cage", "rib_cage", "rib_cage", None, None]
    ts = np.array([[[TS_ID[n] for n in names]]], dtype=np.uint8)  # (1, 1, 30)
    out = map_label_map(ts, TOTALSEG_TOTAL_V2)
    assert out.shape == ts.shape and out.dtype == np.uint8
    assert out[0, 0].tolist() == [S[e] if e else 0 for e in expected]


def test_lobes_become_lungs_and_bones_the_bone_region():
    ts = np.zeros((4, 4, 4), np.uint8)
    ts[0, :, :2] = TS_ID["lung_middle_lobe_right"]
    ts[0, :, 2:] = TS_ID["lung_lower_lobe_left"]
    ts[1, :, :2] = TS_ID["vertebrae_T4"]
    ts[1, :, 2:] = TS_ID["rib_right_3"]
    ts[2] = TS_ID["costal_cartilages"]
    out = map_label_map(ts, TOTALSEG_TOTAL_V2)
    assert (out[0, :, :2] == S["lung_right"]).all() and (out[0, :, 2:] == S["lung_left"]).all()
    assert (out[1, :, :2] == S["vertebra"]).all() and (out[1, :, 2:] == S["rib_cage"]).all()
    regions = region_map(out, TOTALSEG_STRUCTURES)
    assert (regions[0] == REGION_IDS["lung"]).all()
    assert (regions[1:3] == REGION_IDS["bone"]).all()
    assert (regions[3] == 0).all()


def test_unknown_and_dropped_ids_become_background():
    ts = np.array([0, TS_ID["colon"], TS_ID["urinary_bladder"], 200, 255, TS_ID["liver"]], dtype=np.uint8)
    assert map_label_map(ts, TOTALSEG_TOTAL_V2).tolist() == [0, 0, 0, 0, 0, S["liver"]]
    # Ids are read through the table given, not assumed: a v1-ordered table maps v1's heart parts.
    v1 = {44: "heart_myocardium", 45: "heart_atrium_left", 5: "liver", 49: "pulmonary_artery"}
    assert map_label_map(np.array([44, 45, 5, 49, 51]), v1).tolist() == [S["heart"], S["heart"], S["liver"], S["mediastinum"], 0]


def test_pleura_and_breast_are_absent_not_empty():
    assert set(TOTALSEG_ABSENT_STRUCTURES) == {"pleura", "breast"}
    assert set(TOTALSEG_ABSENT_REGIONS) == {"pleura", "breast"}
    assert "pleura" not in TOTALSEG_STRUCTURES and "breast" not in TOTALSEG_STRUCTURES
    assert set(TOTALSEG_STRUCTURES) == set(ANATOMY_STRUCTURES) - {"pleura", "breast"}
    covered = {r for r, members in CHEST_REGIONS.items() if any(m in TOTALSEG_STRUCTURES for m in members)}
    assert covered == set(CHEST_REGIONS) - {"pleura", "breast"}


# --------------------------------------------------------------------------- availability
def test_not_available_here_with_a_reason():
    import importlib.util

    if importlib.util.find_spec("totalsegmentator") is not None:
        pytest.skip("TotalSegmentator is installed on this machine")
    ok, reason = totalseg_available()
    assert ok is False
    assert "totalsegmentator" in reason.lower() and "not importable" in reason


@pytest.fixture
def fake_totalseg(monkeypatch, tmp_path):
    """A stand-in ``totalsegmentator`` package: records its calls, paints known classes by slab."""
    calls = []

    def totalsegmentator(input, output=None, ml=False, fast=False, task="total", device="gpu", quiet=False, **kw):
        calls.append({"ml": ml, "fast": fast, "task": task, "device": device, "weights": os.environ.get("TOTALSEG_WEIGHTS_PATH")})
        img = nib.load(str(input))
        seg = np.zeros(img.shape, np.uint8)
        z = img.shape[2]
        seg[..., : z // 4] = TS_ID["liver"]
        seg[..., z // 4: z // 2] = TS_ID["lung_upper_lobe_right"]
        seg[..., z // 2: 3 * z // 4] = TS_ID["colon"]  # dropped
        seg[..., 3 * z // 4:] = TS_ID["rib_left_7"]
        out = nib.Nifti1Image(seg, img.affine)
        if output is not None:
            nib.save(out, str(output))
        return out

    pkg = types.ModuleType("totalsegmentator")
    pkg.__path__ = []
    api = types.ModuleType("totalsegmentator.python_api")
    api.totalsegmentator = totalsegmentator
    maps = types.ModuleType("totalsegmentator.map_to_binary")
    maps.class_map = {"total": dict(TOTALSEG_TOTAL_V2)}
    for name, mod in (("totalsegmentator", pkg), ("totalsegmentator.python_api", api), ("totalsegmentator.map_to_binary", maps)):
        monkeypatch.setitem(sys.modules, name, mod)
    weights = tmp_path / "ts_weights"
    weights.mkdir()
    return weights, calls


def test_weights_must_be_on_disk(fake_totalseg, tmp_path):
    weights, _ = fake_totalseg
    ok, reason = totalseg_available(str(tmp_path / "nowhere"))
    assert not ok and "no TotalSegmentator weights directory" in reason
    ok, reason = totalseg_available(str(weights))
    assert not ok and "empty" in reason
    (weights / "Dataset291_TotalSegmentator_part1_organs_1559subj").mkdir()
    ok, reason = totalseg_available(str(weights))
    assert not ok and "Dataset297" in reason  # the fast model is another folder
    (weights / "Dataset297_TotalSegmentator_total_3mm_1559subj").mkdir()
    assert totalseg_available(str(weights))[0]
    ok, reason = totalseg_available(str(weights), fast=False)
    assert not ok and "Dataset292_*" in reason and "Dataset291" not in reason


def test_weights_dir_follows_totalseg_home(fake_totalseg, tmp_path, monkeypatch):
    home = tmp_path / "tshome"
    (home / "nnunet" / "results" / "Dataset297_TotalSegmentator_total_3mm_1559subj").mkdir(parents=True)
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    ok, reason = totalseg_available()
    assert ok, reason


# --------------------------------------------------------------------------- config + infer
def _ct(tmp_path, shape=(24, 20, 16)):
    rng = np.random.default_rng(0)
    arr = rng.normal(40, 20, shape).astype(np.int16)
    arr[:, :3] = -1000  # air: CT in HU
    path = str(tmp_path / "ct.nii.gz")
    affine = np.diag([1.5, 1.5, 2.5, 1.0])
    affine[:3, 3] = (-10, 5, 30)
    nib.save(nib.Nifti1Image(arr, affine), path)
    return path, affine


def test_config_falls_back_to_the_network_with_one_warning(tmp_path, caplog):
    from lib.configs.anatomy import Anatomy
    from lib.infers.anatomy import AnatomyInfer

    cfg = Anatomy()
    with caplog.at_level(logging.WARNING):
        cfg.init("anatomy", str(tmp_path), {"anatomy_backend": "totalsegmentator"}, None)
        task = cfg.infer()["anatomy"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "TotalSegmentator" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("TotalSegmentator requested but unavailable: ")
    assert warnings[0].endswith("; using the anatomy network")
    assert cfg.backend == "network"
    assert isinstance(task, AnatomyInfer) and task.prior is None and task.backend == "network"
    assert task.labels == cfg.labels and task.labels["liver"] == 1
    assert cfg.trainer() is not None


def test_config_default_is_the_network_and_unknown_backends_are_refused(tmp_path, caplog):
    from lib.configs.anatomy import Anatomy

    cfg = Anatomy()
    with caplog.at_level(logging.WARNING):
        cfg.init("anatomy", str(tmp_path), {}, None)
    assert cfg.backend == "network" and not [r for r in caplog.records if "TotalSegmentator" in r.getMessage()]
    with pytest.raises(ValueError, match="anatomy_backend"):
        Anatomy().init("anatomy", str(tmp_path), {"anatomy_backend": "sam"}, None)


def test_totalsegmentator_backend_answers_on_the_input_grid_and_caches_apart(fake_totalseg, tmp_path):
    from lib.configs.anatomy import Anatomy

    weights, calls = fake_totalseg
    (weights / "Dataset297_TotalSegmentator_total_3mm_1559subj").mkdir()
    image, affine = _ct(tmp_path)
    conf = {"anatomy_backend": "totalsegmentator", "totalseg_weights_dir": str(weights), "anatomy_cache_dir": str(tmp_path / "cache")}
    cfg = Anatomy()
    cfg.init("anatomy", str(tmp_path), conf, None)
    assert cfg.backend == "totalsegmentator"
    task = cfg.infer()["anatomy"]
    assert task.is_valid()  # no checkpoint of ours needed
    assert "right lung" in task.labels and "pleura" not in task.labels

    env_before = os.environ.get("TOTALSEG_WEIGHTS_PATH")
    f1, r1 = task({"image": image, "model": "anatomy"})
    assert calls == [{"ml": True, "fast": True, "task": "total", "device": "cpu", "weights": str(weights)}]
    assert os.environ.get("TOTALSEG_WEIGHTS_PATH") == env_before
    assert r1["backend"] == "totalsegmentator" and r1["cache"] == "miss"
    assert r1["model"]["version"].startswith("totalsegmentator-") and r1["model"]["file"] is None
    assert r1["label_names"]["right lung"] == S["lung_right"] and "pleura" not in r1["label_names"]
    assert set(r1["absent_structures"]) == {"pleura", "breast"}
    out = nib.load(f1)
    np.testing.assert_allclose(out.affine, affine, atol=1e-4)
    lab = np.asarray(out.dataobj)
    assert lab.shape == (24, 20, 16)
    assert (lab[..., :4] == S["liver"]).all() and (lab[..., 4:8] == S["lung_right"]).all()
    assert (lab[..., 8:12] == 0).all() and (lab[..., 12:] == S["rib_cage"]).all()

    f2, r2 = task({"image": image})
    assert r2["cache"] == "hit" and len(calls) == 1
    np.testing.assert_array_equal(np.asarray(nib.load(f2).dataobj), lab)

    # The network backend over the same cache folder never sees TotalSegmentator's entry.
    net = Anatomy()
    net.init("anatomy", str(tmp_path), {"anatomy_cache_dir": str(tmp_path / "cache")}, None)
    net_task = net.infer()["anatomy"]
    assert net_task.result_version().startswith("network:") and task.result_version().startswith("totalsegmentator:")
    assert net_task.cache.get(net_task.cache.key(image, net_task.result_version()), ".nii.gz") is None
    for f in (f1, f2):
        os.remove(f)


def test_prior_segment_returns_only_what_it_can_hold(fake_totalseg, tmp_path):
    weights, _ = fake_totalseg
    (weights / "Dataset297_TotalSegmentator_total_3mm_1559subj").mkdir()
    image, _ = _ct(tmp_path)
    label, structures = TotalSegmentatorPrior(weights_dir=str(weights)).segment(image)
    assert label.shape == (24, 20, 16)
    assert "pleura" not in structures and "breast" not in structures and structures["lung_right"] == S["lung_right"]
    with pytest.raises(RuntimeError, match="unavailable"):
        TotalSegmentatorPrior(weights_dir=str(weights), fast=False).segment(image)  # never downloads the full model
