"""End-to-end MedGrounder through MONAI Label's own client: ``/infer/medgrounder`` on a chest CT
(report from the datastore or in ``params``) answers every sentence with zero, one or many scored
boxes and a label map of named box outlines; ``/infer/medgrounder_cxr`` does the same on the
study's radiograph, and each task refuses the other's image dimension with a 422;
``/train/medgrounder`` (stage 2) publishes weights the next infer uses.

Its own server (medgrounder + medgrounder_cxr, one small chest study and its radiograph, bundled
weights): the session server of the other e2e tests serves the lesion models only.
"""
from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from .conftest import client_of, start_server, wait_for_training

pytestmark = pytest.mark.slow

BILATERAL = "FINDINGS:\nNo pneumothorax. The pancreas is unremarkable. Small bilateral pleural effusions."


@pytest.fixture(scope="module")
def mg_server(tmp_path_factory):
    from lib.data.studies import generate_dataset
    from lib.data.synthetic.radiograph import write_radiograph_studies

    base = tmp_path_factory.mktemp("mg_server")
    studies = str(base / "studies")
    seeds = [20031]  # a held-out (test) seed whose study has small bilateral pleural effusions
    generate_dataset(studies, seeds, preset="small", body="chest")  # serve.sh leaves a non-empty folder as it is
    write_radiograph_studies(studies, studies, [f"chest_{s:05d}" for s in seeds])
    env = {"MODELS": "medgrounder,medgrounder_cxr", "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
    yield from start_server(base, env, {"model_dir": base / "model"})
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def mg_client(mg_server, tmp_path_factory):
    return client_of(mg_server, tmp_path_factory, "mg")


def _ids(client) -> tuple[str, str]:
    objects = sorted(client.datastore()["objects"])
    return next(k for k in objects if not k.endswith("_cxr")), next(k for k in objects if k.endswith("_cxr"))


def _answer(params):
    return json.loads(params) if isinstance(params, str) else params


def _check_boxes(params, label, image_shape):
    boxes = [b for s in params["sentences"] for b in s["boxes"]]
    assert params["n_boxes"] == len(boxes) and label.shape == tuple(image_shape)
    assert params["label_names"] == {b["label_name"]: b["label"] for b in boxes}
    assert set(np.unique(label).tolist()) - {0} <= {b["label"] for b in boxes}
    for s in params["sentences"]:
        assert s["groundable"] == bool(s["boxes"])
        for b in s["boxes"]:
            lo, hi = b["box_vox"]
            assert len(lo) == len(image_shape) and all(0 <= a <= z < n for a, z, n in zip(lo, hi, image_shape))
            assert params["threshold"] <= b["confidence"] <= 1
    return boxes


def test_infer_medgrounder_on_ct_from_the_datastore_and_params(mg_client, mg_server):
    from lib.reports import parse_report

    ct_id, _ = _ids(mg_client)
    image = nib.load(os.path.join(mg_server.studies, f"{ct_id}.nii.gz"))
    with open(os.path.join(mg_server.studies, "reports", f"{ct_id}.txt"), encoding="utf-8") as f:
        report = f.read()
    label_file, params = mg_client.infer("medgrounder", ct_id, {})  # the report from the datastore
    params = _answer(params)
    assert [s["text"] for s in params["sentences"]] == [s.text for s in parse_report(report).sentences]
    _check_boxes(params, np.asarray(nib.load(label_file).dataobj), image.shape)
    assert params["model"]["version"] not in ("", "untrained")

    label_file, params = mg_client.infer("medgrounder", ct_id, {"report": BILATERAL})
    params = _answer(params)
    _check_boxes(params, np.asarray(nib.load(label_file).dataobj), image.shape)
    n = {s["text"]: len(s["boxes"]) for s in params["sentences"]}
    assert n["No pneumothorax."] == 0 and n["The pancreas is unremarkable."] == 0
    assert n["Small bilateral pleural effusions."] == 2


def test_infer_medgrounder_cxr_on_the_radiograph_and_dimension_guard(mg_client, mg_server):
    from monailabel.client.client import MONAILabelClientException

    ct_id, cxr_id = _ids(mg_client)
    if "medgrounder_cxr" not in mg_client.info()["models"]:
        pytest.skip("no bundled medgrounder_cxr checkpoint")
    image = nib.load(os.path.join(mg_server.studies, f"{cxr_id}.nii.gz"))
    label_file, params = mg_client.infer("medgrounder_cxr", cxr_id, {"report": BILATERAL})
    params = _answer(params)
    boxes = _check_boxes(params, np.asarray(nib.load(label_file).dataobj), image.shape)
    assert all(len(b["box_mm"][0]) == 2 for b in boxes)
    n = {s["text"]: len(s["boxes"]) for s in params["sentences"]}
    assert n["No pneumothorax."] == 0 and n["Small bilateral pleural effusions."] >= 1
    for model, image_id, want in (("medgrounder_cxr", ct_id, "2D image"), ("medgrounder", cxr_id, "3D CT volume")):
        with pytest.raises(MONAILabelClientException) as e:
            mg_client.infer(model, image_id, {"report": BILATERAL})
        assert "Status: 422" in str(e.value.msg) and want in str(e.value.msg)


def test_train_medgrounder_stage2_publishes_weights_the_next_infer_uses(mg_client, mg_server):
    published = os.path.join(mg_server.model_dir, "medgrounder.pt")
    assert not os.path.exists(published)
    mg_client.train_start("medgrounder", {"stage": 2, "max_epochs": 1, "val_split": 0, "max_sentences": 8})
    status = wait_for_training(mg_client, timeout_s=300)
    assert status.get("status") == "DONE", status
    assert os.path.exists(published)
    stats = json.load(open(os.path.join(mg_server.model_dir, "medgrounder", "train_stats.json")))
    assert stats["stage"] == 2 and stats["total_epochs"] == 1 and stats["n_train"] == 1 and stats["pretrained"]
    ct_id, _ = _ids(mg_client)
    _, params = mg_client.infer("medgrounder", ct_id, {"report": BILATERAL})
    assert _answer(params)["model"]["file"] == "medgrounder.pt"
