"""The ``gleve`` infer task's contract: one entry per lesion description, labels on the input grid,
named segments, and a reason (not a guess) for what cannot be grounded.

The network here is untrained (the contract does not depend on training) except that its octree
refinement head is biased to answer "lesion" inside its root cube, so every lesion whose organ is
in the image is grounded somewhere; what GLeVE learns is scored by scripts/evaluate_lesion_models.py.
"""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import torch

from lib.configs.gleve import Gleve
from lib.data.studies import generate_dataset, image_path, read_report
from lib.reports import parse_report

_APP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "apps", "radground")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("gleve")
    studies = str(base / "studies")
    generate_dataset(studies, [20002], preset="small", body="both")
    (base / "model").mkdir()
    cfg = Gleve()
    cfg.init("gleve", str(base / "model"), {}, None)
    torch.manual_seed(0)
    cfg.network.refiner.head.conv_out.bias.data.fill_(6.0)
    torch.save({"model": cfg.network.state_dict()}, cfg.path[1])
    return cfg.infer()["gleve"], studies


def _run(task, studies, image_id, report, **params):
    req = {"image": image_path(studies, image_id), "parsed_report": parse_report(report).model_dump(), "device": "cpu", "model": "gleve", **params}
    return task(req)


def test_every_lesion_description_answered_on_the_input_grid(setup):
    task, studies = setup
    report = read_report(studies, "synth_20002")
    units = parse_report(report).findings
    assert len(units) >= 2
    f, r = _run(task, studies, "synth_20002", report)
    label = np.asarray(nib.load(f).dataobj)
    assert label.shape == nib.load(image_path(studies, "synth_20002")).shape
    assert [x["sentence"] for x in r["lesions"]] == [u.text for u in units]
    assert [tuple(x["span"]) for x in r["lesions"]] == [tuple(u.span) for u in units]
    grounded = [x for x in r["lesions"] if x["label"] is not None]
    assert grounded, r["lesions"]
    assert set(r["label_names"].values()) == {x["label"] for x in grounded}
    assert set(np.unique(label)) - {0} == {x["label"] for x in grounded}
    for x in grounded:
        assert x["label_name"].startswith(f"lesion {x['index'] + 1} — ") and x["reason"] is None
        (lo, hi), (mlo, mhi) = x["box_vox"], x["box_mm"]
        assert all(a <= b for a, b in zip(lo, hi)) and all(a <= b for a, b in zip(mlo, mhi))
        idx = np.nonzero(label == x["label"])
        assert [int(a.min()) for a in idx] == lo and [int(a.max()) for a in idx] == hi
        assert x["measured_volume_ml"] > 0 and x["verification_score"] is not None and x["candidate_entropy"] >= 0
    for x in r["lesions"]:
        assert x["label"] is not None or x["reason"]


def test_nothing_above_threshold_gives_reasons_not_labels(setup):
    task, studies = setup
    f, r = _run(task, studies, "synth_20002", read_report(studies, "synth_20002"), threshold=1.0)
    assert not np.asarray(nib.load(f).dataobj).any()
    assert r["label_names"] == {} and all(x["label"] is None and x["reason"] for x in r["lesions"])


def test_organ_missing_from_the_image_is_a_reason(setup):
    """A pancreatic lesion reported for a chest CT: the pancreas is not in the image."""
    task, studies = setup
    f, r = _run(task, studies, "chest_20002", "FINDINGS: A 2 cm hypodense mass in the pancreatic tail.")
    (x,) = r["lesions"]
    assert x["organ"] == "pancreas" and x["label"] is None and "not found in this image" in x["reason"]


def test_report_without_lesions_gives_an_empty_label(setup):
    task, studies = setup
    f, r = _run(task, studies, "synth_20002", "FINDINGS: The liver is normal. No pancreatic mass.")
    assert r["lesions"] == [] and not np.asarray(nib.load(f).dataobj).any()


def test_without_a_checkpoint_the_server_answers_503(tmp_path):
    """No GLeVE weights for the variant asked for (only tiny ships): a clear 503 through the app's guard."""
    from fastapi import HTTPException
    from main import RadGroundApp

    studies = str(tmp_path / "studies")
    generate_dataset(studies, [20003], preset="tiny")
    app = RadGroundApp(_APP_DIR, studies, {"models": "gleve", "model_dir": str(tmp_path / "model"), "gleve_variant": "paper"})
    with pytest.raises(HTTPException) as e:
        app.infer({"model": "gleve", "image": "synth_20003", "device": "cpu"})
    assert e.value.status_code == 503 and "train the task first" in e.value.detail


def test_the_organ_prior_is_the_apps_own_anatomy_task(tmp_path):
    """One anatomy network and one cache per app: GLeVE's prior is the /infer/anatomy task itself."""
    from lib.configs.anatomy import Anatomy
    from lib.configs.gleve import Gleve

    conf = {"models": "anatomy,gleve"}
    anatomy, gleve = Anatomy(), Gleve()
    anatomy.init("anatomy", str(tmp_path), conf, None)
    gleve.init("gleve", str(tmp_path), conf, None)
    shared = anatomy.infer()["anatomy"]
    assert gleve.infer()["gleve"].anatomy_task is shared
    other = Gleve()
    other.init("gleve", str(tmp_path / "elsewhere"), conf, None)
    assert other.infer()["gleve"].anatomy_task is not shared  # another model_dir: another cache


def test_ablation_switches_from_conf_get_their_own_checkpoint(tmp_path):
    from lib.configs.gleve import Gleve

    cfg = Gleve()
    cfg.init("gleve", str(tmp_path), {"gleve_without": "ocre, lequ"}, None)
    c = cfg.network.config
    assert (c.use_lequ, c.use_anver, c.use_ocre) == (False, True, False)
    assert [os.path.basename(p) for p in cfg.path] == ["pretrained_gleve_wo_lequ_wo_ocre.pt", "gleve_wo_lequ_wo_ocre.pt"]
    with pytest.raises(ValueError, match="gleve_without"):
        Gleve().init("gleve", str(tmp_path), {"gleve_without": "film"}, None)
