"""End-to-end MedVol-R1 through MONAI Label's own client: ``/infer/medvolr1`` answers a free-form
query with a 3D mask on the image grid and the evidence (key slice, boxes, reasoning, confidence);
a bad query and a truncated (malformed) policy answer are 422s; ``/train/medvolr1`` runs a short
GRPO stage from the bundled SFT + GRPO weights and the next answer comes from the published file.

Its own server (medvolr1 only, two tiny abdominal studies, bundled weights).
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
def mv_server(tmp_path_factory):
    env = {"MODELS": "medvolr1", "PRESET": "tiny", "N_STUDIES": "2", "BODY": "abdomen", "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
    yield from own_server(tmp_path_factory, "medvolr1", env)


@pytest.fixture(scope="module")
def mv_client(mv_server, tmp_path_factory):
    return client_of(mv_server, tmp_path_factory, "medvolr1")


def _image_id(client) -> str:
    return sorted(client.datastore()["objects"])[0]


def _params(params):
    return json.loads(params) if isinstance(params, str) else params


#: wordings the bundled policy was trained on (the held-out first wording of each list is not)
QUERIES = ("the organ that detoxifies the blood and makes albumin", "the largest solid organ of the upper abdomen", "the lymphoid organ in the left upper quadrant", "the lien")


def _first_answer(client, image_id):
    """The first query the policy answers well-formed. A malformed answer (a few % of them at this
    size, e.g. a slice number past the sequence) must come back as a clear 422, never a crash."""
    from monailabel.client.client import MONAILabelClientException

    for q in QUERIES:
        try:
            label_file, params = client.infer("medvolr1", image_id, {"query": q})
            return q, label_file, _params(params)
        except MONAILabelClientException as e:
            assert "Status: 422" in e.msg and "malformed" in e.msg, e.msg
    pytest.fail(f"no well-formed answer to any of {QUERIES}")


def test_query_gives_a_mask_and_its_evidence(mv_client, mv_server):
    client = mv_client
    assert "medvolr1" in client.info()["models"]
    image_id = _image_id(client)
    query, label_file, params = _first_answer(client, image_id)
    image = nib.load(os.path.join(mv_server.studies, f"{image_id}.nii.gz"))
    label = np.asarray(nib.load(label_file).dataobj)
    assert label.shape == image.shape and set(np.unique(label).tolist()) <= {0, 1}
    assert 1 <= params["key_slice"] <= params["n_slices"] and 0 <= params["key_slice_z"] < image.shape[2]
    assert params["boxes_2d"] and len(params["boxes_vox"]) == len(params["boxes_2d"])
    assert isinstance(params["think"], str) and params["response"].startswith("<think>")
    assert 0.0 < params["confidence"] <= 1.0
    assert params["n_voxels"] == int(label.sum())
    assert params["label_names"] == {query: 1}
    assert params["grounding"]["findings"][0]["sentence"]["text"] == query
    assert params["model"]["file"] == "pretrained_medvolr1.pt"


def test_bad_query_and_malformed_answer_are_422(mv_client):
    from monailabel.client.client import MONAILabelClientException

    client = mv_client
    image_id = _image_id(client)
    with pytest.raises(MONAILabelClientException) as e:
        client.infer("medvolr1", image_id, {"query": "   "})
    assert "Status: 422" in e.value.msg and "query" in e.value.msg
    # five tokens cannot hold a whole <think>..</think><answer>..</answer>: a malformed answer
    with pytest.raises(MONAILabelClientException) as e:
        client.infer("medvolr1", image_id, {"query": "the organ that stores bile", "max_new_tokens": 5})
    assert "Status: 422" in e.value.msg and "malformed" in e.value.msg


def test_train_grpo_publishes_weights_the_next_infer_uses(mv_client, mv_server):
    client = mv_client
    published = os.path.join(mv_server.model_dir, "medvolr1.pt")
    assert not os.path.exists(published)
    client.train_start("medvolr1", {"stage": "grpo", "grpo_steps": 2, "group_size": 2, "val_split": 0})
    status = wait_for_training(client, timeout_s=300)
    assert status.get("status") == "DONE", status
    assert os.path.exists(published)
    stats = json.load(open(os.path.join(mv_server.model_dir, "medvolr1", "train_stats.json")))
    assert stats["stage"] == "grpo" and len(stats["grpo"]) == 2
    _, _, params = _first_answer(client, _image_id(client))
    assert params["model"]["file"] == "medvolr1.pt"
