"""Scoring methods against a real datastore.

``ModelDisagreementScoring`` with stand-in lesion models (exact arithmetic, fast);
``ReportUncertaintyScoring`` / ``ReportInconsistencyScoring`` with the real ``gleve`` infer task and
its bundled checkpoint on small synthetic studies (slow: GLeVE passes on the CPU).
"""
from __future__ import annotations

import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.activelearning.scoring import INCONSISTENCY, UNCERTAINTY, ModelDisagreementScoring, ReportInconsistencyScoring, ReportUncertaintyScoring
from lib.activelearning.strategies import HighestScore
from lib.data.studies import generate_dataset, label_path, truth_lesions_path
from lib.reports import parse_report

from .conftest import make_datastore


class MaskModel:
    """A trained lesion model that answers a fixed mask (as a label file, like the infer tasks)."""

    def __init__(self, tmp, mask, path="weights.pt"):
        self.tmp, self.mask, self.calls = tmp, mask, 0
        self.path = os.path.join(tmp, path)
        open(self.path, "wb").write(os.urandom(8))

    def get_path(self):
        return self.path

    def __call__(self, request):
        self.calls += 1
        f = os.path.join(self.tmp, f"out_{id(self)}_{self.calls}.nii.gz")
        nib.save(nib.Nifti1Image(self.mask.astype(np.uint8), np.eye(4)), f)
        return f, {}


def test_model_disagreement_is_one_minus_dice_and_stored(tmp_path, datastore):
    root = os.path.dirname(datastore._datastore_config_path)
    os.makedirs(os.path.join(root, "reports"))
    for sid in ("s1", "s2"):
        open(os.path.join(root, "reports", f"{sid}.txt"), "w").write("FINDINGS: A 2 cm hypodense lesion in the liver.")
    a = np.zeros((4, 4, 4), bool)
    a[:2] = True
    b = np.zeros_like(a)
    b[1:3] = True
    scoring = ModelDisagreementScoring({"m1": MaskModel(str(tmp_path), a, "a.pt"), "m2": MaskModel(str(tmp_path), b, "b.pt")})
    res = scoring({}, datastore)
    assert res["executed"] == 2 and set(res["not_scored"]) == {"s3"}  # s3 has no report; s4 is labelled
    info = datastore.get_image_info("s1")
    assert info["model_disagreement"] == pytest.approx(0.5) and info["model_disagreement_detail"]["dice"] == {"m1|m2": 0.5}
    assert scoring({}, datastore)["executed"] == 0  # same models, same report: not recomputed
    open(scoring.tasks["m2"].path, "wb").write(os.urandom(8))  # a new checkpoint
    assert scoring({}, datastore)["executed"] == 2


def test_model_disagreement_needs_two_trained_models(tmp_path, datastore):
    one = MaskModel(str(tmp_path), np.zeros((4, 4, 4), bool))
    untrained = MaskModel(str(tmp_path), np.zeros((4, 4, 4), bool), "u.pt")
    untrained.get_path = lambda: None
    res = ModelDisagreementScoring({"m1": one, "m2": untrained})({}, datastore)
    assert res["executed"] == 0 and "two trained" in res["error"]


@pytest.fixture(scope="module")
def gleve_store(tmp_path_factory):
    from lib.configs.gleve import Gleve

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("al_gleve")
    studies = str(base / "studies")
    # 20000, 20001: report only (one lesion each); 20002: three lesions, annotated
    generate_dataset(studies, [20000, 20001, 20002], preset="small", report_only_fraction=[20000, 20001])
    shutil.copy(truth_lesions_path(studies, "synth_20002"), label_path(studies, "synth_20002"))
    cfg = Gleve()
    cfg.init("gleve", str(base / "model"), {"active_learning": "true"}, None)
    assert os.path.basename(cfg.infer()["gleve"].get_path()) == "pretrained_gleve.pt"
    ds = LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False)
    return cfg, ds, studies


@pytest.mark.slow
def test_report_scores_are_stored_for_unlabelled_studies_and_ranked(gleve_store):
    cfg, ds, studies = gleve_store
    methods = cfg.scoring_method()
    res = methods[UNCERTAINTY]({"tta": 1, "device": "cpu"}, ds)
    assert res["executed"] == 2 and set(res["scores"]) == {"synth_20000", "synth_20001"}, res
    for sid in ("synth_20000", "synth_20001"):
        info = ds.get_image_info(sid)
        assert 0.0 <= info[UNCERTAINTY] <= 1.0 and 0.0 <= info[INCONSISTENCY] <= 1.0
        report = open(os.path.join(studies, "reports", f"{sid}.txt")).read()
        lesions = info[f"{UNCERTAINTY}_detail"]["lesions"]
        assert [x["sentence"] for x in lesions] == [u.text for u in parse_report(report).findings]
        assert all(set(x["tta_dice"]) == {"flip_lr"} for x in lesions if x["grounded"])
        assert info[f"{INCONSISTENCY}_detail"]["terms"]["count"] is not None
    assert UNCERTAINTY not in ds.get_image_info("synth_20002")  # annotated: not a candidate
    # same model, same reports: the inconsistency method finds everything up to date
    assert methods[INCONSISTENCY]({"device": "cpu"}, ds)["executed"] == 0
    assert methods[UNCERTAINTY]({"tta": 1, "device": "cpu"}, ds)["skipped"] == 2
    best = max(("synth_20000", "synth_20001"), key=lambda s: (ds.get_image_info(s)[UNCERTAINTY], s == "synth_20000"))
    assert cfg.strategy()[UNCERTAINTY]({"strategy": UNCERTAINTY}, ds)["id"] == best
