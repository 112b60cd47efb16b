"""Chest CT studies: anatomy of the 10 Reg2RG regions, findings inside their structure, region-organised reports."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from lib.anatomy.labels import ANATOMY_STRUCTURES as S
from lib.anatomy.labels import CHEST_REGIONS, REGION_IDS, region_map
from lib.data.studies import generate_dataset, organ_path, read_truth, region_path
from lib.data.synthetic.chest_findings import FINDING_REGION, lung_lobe
from lib.data.synthetic.sentences import split_sentences
from lib.data.synthetic.study import generate_study

SEEDS = tuple(range(40))


@functools.lru_cache(maxsize=None)
def chest(seed: int, preset: str = "tiny"):
    return generate_study(seed, preset, body="chest")


@pytest.fixture(scope="module")
def studies():
    return [chest(s) for s in SEEDS]


def test_deterministic_and_distinct_from_abdomen():
    a, b = chest(3, "tiny"), generate_study(3, "tiny", body="chest")
    assert a is not b and np.array_equal(a.image, b.image) and a.report == b.report
    assert a.study_id == "chest_00003" and generate_study(3, "tiny").study_id == "synth_00003"


def test_every_region_present_with_plausible_size():
    s = chest(1, "small")
    vox_ml = float(np.prod(s.spacing)) / 1000
    ml = {r: float((s.regions == i).sum()) * vox_ml for r, i in REGION_IDS.items()}
    assert all(v > 0 for v in ml.values()), ml
    assert 2000 < ml["lung"] < 7000 and 10 < ml["thyroid"] < 60 and 300 < ml["heart"] < 2500
    assert np.array_equal(s.regions, region_map(s.organs))


def test_structures_have_expected_attenuation():
    s = chest(2, "small")
    hu = {k: float(s.image[s.organs == v].mean()) for k, v in S.items() if (s.organs == v).any()}
    assert hu["lung_right"] < -700 and hu["lung_left"] < -700
    assert hu["rib_cage"] > 250 and hu["vertebra"] > 200
    assert hu["heart"] > 60 and hu["thyroid"] > 60
    assert -150 < hu["pleura"] < 40
    # right lung is right of the midline (array index i grows to the patient's left)
    xi = {k: np.nonzero(s.organs == S[k])[0].mean() for k in ("lung_right", "lung_left")}
    assert xi["lung_right"] < xi["lung_left"]


def test_findings_inside_their_structure_and_linked(studies):
    kinds = set()
    for s in studies:
        ids = sorted(set(np.unique(s.lesions)) - {0})
        assert ids == [f["id"] for f in s.truth["findings"] if f["n_voxels"] > 0]
        for f in s.truth["findings"]:
            kinds.add(f["kind"])
            assert f["region"] == FINDING_REGION[f["kind"]]
            if f["n_voxels"]:
                regions_here = s.regions[s.lesions == f["id"]]
                assert (regions_here == REGION_IDS[f["region"]]).mean() > 0.95, f
            sent = s.truth["sentences"][f["sentence_index"]]
            assert f["id"] in sent["lesion_ids"] and sent["region"] == f["region"] and not sent["restates"]
    assert {"nodule", "pleural_effusion", "emphysema", "cardiomegaly", "degenerative"} <= kinds


def test_lung_lobes_follow_fissures():
    lm = {"carina": [0.0, 8.0, 0.0], "hila": {"right": [-55.0, 8.0, -8.0], "left": [55.0, 10.0, 0.0]}}
    assert lung_lobe(np.array([-60, 60, -80]), lm) == ("right", "right lower lobe")  # posterior-inferior
    assert lung_lobe(np.array([-60, -40, -60]), lm) == ("right", "right middle lobe")
    assert lung_lobe(np.array([-60, 0, 60]), lm) == ("right", "right upper lobe")
    assert lung_lobe(np.array([60, -40, -60]), lm) == ("left", "left upper lobe")  # no middle lobe on the left


def test_report_has_every_region_true_normals_and_spans(studies):
    for s in studies:
        t = s.truth
        assert split_sentences(s.report) == [tuple(x["span"]) for x in t["sentences"]]
        regions = {x["region"] for x in t["sentences"] if x["section"] == "findings" and x["kind"] != "non_diagnostic"}
        assert regions == set(CHEST_REGIONS)
        assert set(t["region_reports"]) == set(CHEST_REGIONS) and all(t["region_reports"].values())
        kinds = {f["kind"] for f in t["findings"]}
        text = s.report.lower()
        if "pleural_effusion" in kinds:
            assert "no pleural effusion" not in text
        if "cardiomegaly" in kinds:
            assert "heart size is normal" not in text and "normal in size" not in t["region_reports"]["heart"]
        if not kinds:
            assert any(x["section"] == "impression" and x["kind"] == "normal" for x in t["sentences"])


def test_dataset_both_bodies_writes_region_maps(tmp_path):
    out = generate_dataset(str(tmp_path), [7], preset="tiny", body="both")
    assert [o["study_id"] for o in out] == ["synth_00007", "chest_00007"]
    assert "regions" in out[1]["paths"] and "regions" not in out[0]["paths"]
    import nibabel as nib

    reg = np.asarray(nib.load(region_path(str(tmp_path), "chest_00007")).dataobj)
    org = np.asarray(nib.load(organ_path(str(tmp_path), "chest_00007")).dataobj)
    assert np.array_equal(reg, region_map(org))
    assert read_truth(str(tmp_path), "chest_00007")["region"] == "chest"
    with pytest.raises(ValueError):
        generate_dataset(str(tmp_path), [7], preset="tiny", body="knee")
