"""End-to-end Reg2RG through MONAI Label's own client: ``/infer/reg2rg`` on a chest study returns a
report per region (text, recognised area, matched flag) and a named region label map; a region
subset asks for fewer sections, and a bad one is a 422.

Its own server (anatomy + reg2rg, one small chest study, bundled weights): the session server of
the other e2e tests serves the lesion models only.
"""
from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from .conftest import client_of, own_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reg2rg_server(tmp_path_factory):
    env = {"MODELS": "anatomy,reg2rg", "PRESET": "small", "N_STUDIES": "1", "BODY": "chest", "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
    yield from own_server(tmp_path_factory, "reg2rg", env)


@pytest.fixture(scope="module")
def reg2rg_client(reg2rg_server, tmp_path_factory):
    return client_of(reg2rg_server, tmp_path_factory, "reg2rg")


def _chest_id(client) -> str:
    return next(k for k in sorted(client.datastore()["objects"]) if k.startswith("chest_"))


def _truth_regions(server, image_id: str) -> np.ndarray:
    return np.asarray(nib.load(os.path.join(server.studies, "labels", "regions", f"{image_id}.nii.gz")).dataobj)


def test_infer_reg2rg_writes_a_report_per_region_on_a_named_region_map(reg2rg_client, reg2rg_server):
    from lib.anatomy.labels import REGION_IDS

    client, server = reg2rg_client, reg2rg_server
    info = client.info()
    assert "reg2rg" in info["models"] and set(info["models"]["reg2rg"]["labels"]) == set(REGION_IDS)
    image_id = _chest_id(client)
    label_file, params = client.infer("reg2rg", image_id, {"max_new_tokens": 120})
    if isinstance(params, str):
        params = json.loads(params)
    label = np.asarray(nib.load(label_file).dataobj)
    assert label.shape == nib.load(os.path.join(server.studies, f"{image_id}.nii.gz")).shape

    records = params["regions"]
    assert len(records) >= 8  # the anatomy task finds (nearly) every chest region
    assert [r["index"] for r in records] == list(range(len(records)))
    for r in records:
        assert set(r) >= {"index", "region", "label", "text", "recognised_area", "matched"}
        assert r["label"] == REGION_IDS[r["region"]] and isinstance(r["matched"], bool)
        assert r["matched"] == (r["recognised_area"] == r["region"])
        assert "The region" not in r["text"]  # the RRA prefix is read back and stripped
    assert params["n_matched"] == sum(r["matched"] for r in records) and params["n_matched"] >= len(records) // 2
    assert sum(bool(r["text"]) for r in records) >= len(records) // 2
    assert params["label_names"] == {r["region"]: r["label"] for r in records}
    assert set(np.unique(label).tolist()) - {0} == {r["label"] for r in records}
    assert params["model"]["version"] not in ("", "untrained")

    # the map is the anatomy task's regions on the image grid: it agrees with the study's true regions
    truth = _truth_regions(server, image_id)
    lung = REGION_IDS["lung"]
    dice = 2 * ((label == lung) & (truth == lung)).sum() / max(1, (label == lung).sum() + (truth == lung).sum())
    assert dice > 0.8


def test_region_subset_and_bad_region(reg2rg_client):
    from monailabel.client.client import MONAILabelClientException

    from lib.anatomy.labels import REGION_IDS

    client = reg2rg_client
    image_id = _chest_id(client)
    label_file, params = client.infer("reg2rg", image_id, {"regions": "heart,lung", "max_new_tokens": 80})
    if isinstance(params, str):
        params = json.loads(params)
    assert [r["region"] for r in params["regions"]] == ["heart", "lung"]  # canonical order
    assert set(np.unique(np.asarray(nib.load(label_file).dataobj)).tolist()) == {0, REGION_IDS["heart"], REGION_IDS["lung"]}
    assert params["label_names"] == {"heart": REGION_IDS["heart"], "lung": REGION_IDS["lung"]}
    with pytest.raises(MONAILabelClientException) as e:
        client.infer("reg2rg", image_id, {"regions": ["lung", "spleen"]})
    assert "Status: 422" in e.value.msg and "spleen" in e.value.msg
