"""End-to-end Seg-det-explain through MONAI Label's own client: ``/infer/segdetexplain`` on an
abdominal study answers a query slice by slice (mask on the asked slices of a label on the input
grid, boxes, appearance text whose position agrees with the mask), the closer look is switchable, a
bad query is a 422, and ``/train/segdetexplain`` publishes weights the next infer uses.

Its own server (segdetexplain only, one small abdominal study, bundled weights).
"""
from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from .conftest import client_of, own_server, wait_for_training

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sde_server(tmp_path_factory):
    env = {"MODELS": "segdetexplain", "PRESET": "small", "N_STUDIES": "1", "BODY": "abdomen", "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
    yield from own_server(tmp_path_factory, "sde", env)


@pytest.fixture(scope="module")
def sde_client(sde_server, tmp_path_factory):
    return client_of(sde_server, tmp_path_factory, "sde")


def _study(client, server):
    image_id = next(k for k in sorted(client.datastore()["objects"]) if k.startswith("synth_"))
    organs = np.asarray(nib.load(os.path.join(server.studies, "labels", "organs", f"{image_id}.nii.gz")).dataobj)
    return image_id, organs


def _params(p):
    return json.loads(p) if isinstance(p, str) else p


def test_infer_segments_detects_and_explains_the_asked_slices(sde_client, sde_server):
    from lib.anatomy.labels import ABDOMEN_ORGANS

    client, server = sde_client, sde_server
    assert "segdetexplain" in client.info()["models"]
    image_id, organs = _study(client, server)
    liver = organs == ABDOMEN_ORGANS["liver"]
    peak = int(np.argmax(liver.sum((0, 1))))
    lo, hi = peak - 1, peak + 1
    label_file, params = client.infer("segdetexplain", image_id, {"query": "liver", "slices": f"{lo}-{hi}"})
    params = _params(params)
    label = np.asarray(nib.load(label_file).dataobj)
    assert label.shape == organs.shape
    assert [s["slice"] for s in params["slices"]] == [lo, lo + 1, hi]
    assert set(np.nonzero(label.reshape(-1, label.shape[2]).any(0))[0]) <= {lo, lo + 1, hi}
    assert params["label_names"] == {"liver": 1} and params["model"]["version"] not in ("", "untrained")
    sl = slice(lo, hi + 1)
    dice = 2 * ((label[..., sl] == 1) & liver[..., sl]).sum() / max(1, (label[..., sl] == 1).sum() + liver[..., sl].sum())
    assert dice > 0.6, dice
    for s in params["slices"]:
        assert "[seg]" in s["routing"] and s["n_pixels"] > 0 and s["boxes_2d"]
        assert s["text"].startswith("The liver is") and "closer_roi" in s
        if s["position_stated"] is not None:
            assert s["position_stated"].split()[0] == s["position_measured"].split()[0]  # right / central / left
    assert params["appearance"] and params["grounding"]["findings"][0]["grounded"]


def test_closer_look_switch_and_bad_query(sde_client, sde_server):
    from monailabel.client.client import MONAILabelClientException

    client = sde_client
    image_id, organs = _study(client, sde_server)
    k = int(np.argmax((organs > 0).sum((0, 1))))
    _, params = client.infer("segdetexplain", image_id, {"query": "spleen", "slices": str(k), "closer": False})
    params = _params(params)
    assert params["closer"] is False and "closer_roi" not in params["slices"][0]
    with pytest.raises(MONAILabelClientException) as e:
        client.infer("segdetexplain", image_id, {"query": "", "slices": str(k)})
    assert "Status: 422" in e.value.msg and "query" in e.value.msg


def test_train_publishes_weights_the_next_infer_uses(sde_client, sde_server):
    client, server = sde_client, sde_server
    published = os.path.join(server.model_dir, "segdetexplain.pt")
    assert not os.path.exists(published)
    client.train_start("segdetexplain", {"max_epochs": 1, "val_split": 0.0})
    status = wait_for_training(client)
    assert status.get("status") == "DONE", status
    assert os.path.exists(published)
    stats = json.load(open(os.path.join(server.model_dir, "segdetexplain", "train_stats.json")))
    assert stats["n_studies"] == 1 and stats["epochs"] and stats["started_from"]  # fine-tunes the bundled weights
    image_id, organs = _study(client, server)
    _, params = client.infer("segdetexplain", image_id, {"query": "liver", "slices": str(int(np.argmax(organs.sum((0, 1)))))})
    assert _params(params)["model"]["file"] == "segdetexplain.pt"
