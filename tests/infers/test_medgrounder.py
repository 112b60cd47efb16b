"""The ``medgrounder`` infer task's contract: one entry per report sentence, boxes in voxels and mm
with confidences, a label map on the input grid with one outlined, named box per answer, request
parameters checked, and (slow) the bundled checkpoint's answers to negations and bilateral findings.

The fast tests use an untrained network whose confidence head is biased to "groundable", so
every query survives the threshold; what MedGrounder learns is scored by
scripts/evaluate_medgrounder.py and the slow test below.
"""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import torch

from lib.data.studies import generate_dataset, image_path
from lib.errors import InvalidParamsError
from lib.infers.medgrounder import MedGrounderInfer, draw_box_outline, inclusive_index_box
from lib.metrics.boxes import box_voxel_to_world
from lib.networks.medgrounder import MedGrounder, MedGrounderConfig
from lib.reports import parse_report

_APP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "apps", "radground")
HASH = {"backend": "hash", "dim": 32}
SIZE = 32
REPORT = "FINDINGS:\nThe heart is enlarged. No pneumothorax.\nIMPRESSION: Cardiomegaly."


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("mg_infer")
    studies = str(base / "studies")
    generate_dataset(studies, [20002], preset="tiny", body="chest")
    torch.manual_seed(0)
    net = MedGrounder(MedGrounderConfig.tiny(text_encoder=HASH, image_size=SIZE, num_queries=4))
    net.conf_head.bias.data.fill_(8.0)  # every query "groundable"
    path = str(base / "medgrounder.pt")
    torch.save({"model": net.state_dict(), "threshold": 0.5}, path)
    task = MedGrounderInfer(path=[path], network=net, image_size=SIZE, iso_mm=6.0)
    return task, studies


def _run(task, studies, report=REPORT, **params):
    req = {"image": image_path(studies, "chest_20002"), "parsed_report": parse_report(report).model_dump(), "device": "cpu", "model": "medgrounder", **params}
    return task(req)


def test_every_sentence_answered_with_boxes_in_voxels_and_mm(setup):
    task, studies = setup
    f, r = _run(task, studies, wbf=False)
    img = nib.load(image_path(studies, "chest_20002"))
    label = np.asarray(nib.load(f).dataobj)
    assert label.shape == img.shape
    parsed = parse_report(REPORT)
    assert [s["text"] for s in r["sentences"]] == [s.text for s in parsed.sentences]
    assert [s["kind"] for s in r["sentences"]] == [s.kind.value for s in parsed.sentences]
    assert r["threshold"] == 0.5  # from the checkpoint
    boxes = [b for s in r["sentences"] for b in s["boxes"]]
    assert len(boxes) == r["n_boxes"] == 4 * len(parsed.sentences)  # no WBF: every confident query
    assert set(r["label_names"].values()) == {b["label"] for b in boxes}
    drawn = set(np.unique(label)) - {0}  # an untrained net puts its boxes on top of each other:
    assert drawn <= {b["label"] for b in boxes} and max(b["label"] for b in boxes) in drawn  # later outlines overwrite
    for s in r["sentences"]:
        assert s["groundable"] == bool(s["boxes"])
        for b in s["boxes"]:
            (lo, hi), (mlo, mhi) = b["box_vox"], b["box_mm"]
            assert all(0 <= a <= z < n for a, z, n in zip(lo, hi, img.shape))
            assert b["confidence"] >= 0.5 and r["label_names"][b["label_name"]] == b["label"]
            assert b["label_name"].startswith(f"sentence {s['index'] + 1} box ")
            mm = box_voxel_to_world(np.array(lo + [v + 1 for v in hi], float), img.affine)
            assert np.allclose(mm, mlo + mhi, atol=0.01)
            vox = np.argwhere(label == b["label"])  # outline of exactly that box (unless another box covers it)
            if len(vox):
                assert (vox.min(0) >= lo).all() and (vox.max(0) <= hi).all()


def test_wbf_merges_and_threshold_one_abstains(setup):
    task, studies = setup
    _, plain = _run(task, studies, wbf=False)
    _, fused = _run(task, studies)
    assert fused["wbf"] is True and fused["n_boxes"] <= plain["n_boxes"]
    f, none = _run(task, studies, threshold=1.0)
    assert none["n_boxes"] == 0 and none["label_names"] == {} and not np.asarray(nib.load(f).dataobj).any()
    assert all(not s["groundable"] for s in none["sentences"])


@pytest.mark.parametrize("bad", [-0.1, 1.5, "high"])
def test_bad_threshold_is_a_422(setup, bad):
    task, studies = setup
    with pytest.raises(InvalidParamsError):
        _run(task, studies, threshold=bad)


def test_box_helpers():
    assert inclusive_index_box(np.array([1.2, 0.0, 3.0, 4.8, 2.0, 5.0]), (10, 10, 10)) == [[1, 0, 3], [4, 1, 4]]
    assert inclusive_index_box(np.array([-5.0, 0, 0, -1.0, 2, 2]), (10, 10, 10)) is None
    lab = np.zeros((6, 6, 6), int)
    draw_box_outline(lab, [[0, 0, 0], [4, 4, 4]], 3)
    assert lab[2, 2, 2] == 0 and lab[0, 2, 2] == 3 and lab[4, 4, 4] == 3 and lab[5, 5, 5] == 0
    assert (lab == 3).sum() == 125 - 27


def test_without_a_checkpoint_the_server_answers_503(tmp_path):
    from fastapi import HTTPException
    from main import RadGroundApp

    studies = str(tmp_path / "studies")
    generate_dataset(studies, [20003], preset="tiny", body="chest")
    app = RadGroundApp(_APP_DIR, studies, {"models": "medgrounder", "model_dir": str(tmp_path / "model"), "medgrounder_variant": "paper", "skip_trainers": "true"})
    with pytest.raises(HTTPException) as e:
        app.infer({"model": "medgrounder", "image": "chest_20003", "device": "cpu"})
    assert e.value.status_code == 503


@pytest.mark.slow
def test_bundled_checkpoint_negations_and_bilateral_findings(tmp_path):
    """The shipped tiny checkpoint (stage 1 + 2 with stage-1 replay), at its stored threshold, on a
    held-out study with small bilateral pleural effusions: negations / normal statements get no
    box, the bilateral effusions exactly two, one on each side of the midline, and "Bilateral lower
    lobe opacities." (no opacity in this study: its stage-1 answer, the two lower lung zones)
    exactly two, the centre of one inside the right lung's lower zone and of the other inside the
    left lung's, zones cut from the study's own structure map as the stage-1 targets are."""
    from lib.configs.medgrounder import Medgrounder
    from lib.data.grounding_targets import AnatomyBoxes
    from lib.data.studies import organ_path

    cfg = Medgrounder()
    cfg.init("medgrounder", str(tmp_path), {}, None)
    if not os.path.exists(cfg.path[0]):
        pytest.skip("no bundled medgrounder checkpoint")
    task = cfg.infer()["medgrounder"]
    studies = str(tmp_path / "studies")
    generate_dataset(studies, [20031], preset="small", body="chest")
    report = "FINDINGS:\nNo pneumothorax. The pancreas is unremarkable. Bilateral lower lobe opacities. Small bilateral pleural effusions."
    req = {"image": image_path(studies, "chest_20031"), "parsed_report": parse_report(report).model_dump(), "device": "cpu", "model": "medgrounder"}
    _, r = task(req)
    by_text = {s["text"]: s["boxes"] for s in r["sentences"]}
    assert not by_text["No pneumothorax."] and not by_text["The pancreas is unremarkable."], r["sentences"]
    mid = nib.load(image_path(studies, "chest_20031")).shape[0] / 2
    centre = lambda b: [(lo + hi + 1) / 2 for lo, hi in zip(*b["box_vox"])]  # noqa: E731  (voxel corner frame)
    eff = by_text["Small bilateral pleural effusions."]
    assert len(eff) == 2 and min(centre(b)[0] for b in eff) < mid < max(centre(b)[0] for b in eff), r["sentences"]
    opac = by_text["Bilateral lower lobe opacities."]
    assert len(opac) == 2, r["sentences"]
    anat = AnatomyBoxes(np.asarray(nib.load(organ_path(studies, "chest_20031")).dataobj))
    for side in ("right", "left"):
        zone = anat.box(f"{side} lower lung zone")
        inside = [b for b in opac if all(zone[i] <= c <= zone[i + 3] for i, c in enumerate(centre(b)))]
        assert len(inside) == 1, (side, zone.tolist(), opac)
