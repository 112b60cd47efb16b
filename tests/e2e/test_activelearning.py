"""Active learning end to end through MONAI Label's own client (issue 9).

A server of its own (it saves labels and trains, so it must not share the datastore of the other
end-to-end tests): 6 small abdominal studies, 4 of them report-only; ``--conf active_learning
true``, one TTA view, and a retraining after 2 new final labels (1 epoch, no validation).

The test scores the unlabelled studies (``/scoring/report_uncertainty``), asks
``/activelearning/report_uncertainty`` for the next study, "annotates" it (saves its true lesion
map as the final label), asks again, annotates the second pick - which starts GLeVE's training
from the server - waits for it, and checks that ``/info`` and the next ``/infer/gleve`` carry the
new model version. Automatic re-scoring is off so each step is deterministic; datastore auto
reload is off so the server must see what its background training changed on its own.
"""
from __future__ import annotations

import json
import os

import pytest
import requests

from .conftest import ROOT, start_server, wait_for_training

pytestmark = pytest.mark.slow

SEEDS = [20000, 20001, 20002, 20003, 20004, 20005]
REPORT_ONLY = [20000, 20001, 20002, 20004]  # 20003 has no lesion; 20005 starts annotated
RETRAIN_PARAMS = {"max_epochs": 1, "val_split": 0.0}


@pytest.fixture(scope="module")
def al_server(tmp_path_factory):
    import sys

    sys.path.insert(0, os.path.join(ROOT, "apps", "radground"))
    from lib.data.studies import generate_dataset

    base = tmp_path_factory.mktemp("al_server")
    generate_dataset(str(base / "studies"), SEEDS, preset="small", report_only_fraction=REPORT_ONLY, body="abdomen")
    env = {"MODELS": "anatomy,gleve", "BODY": "abdomen", "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false", "MONAI_LABEL_AUTO_UPDATE_SCORING": "false", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    conf = {"model_dir": str(base / "model"), "active_learning": "true", "al_tta": "1", "retrain_after": "2", "retrain_params": json.dumps(RETRAIN_PARAMS)}
    yield from start_server(base, env, conf)


@pytest.fixture(scope="module")
def al_client(al_server, tmp_path_factory):
    from monailabel.client import MONAILabelClient

    return MONAILabelClient(al_server.url, tmpdir=str(tmp_path_factory.mktemp("al_client")))


def _info(client, image_id):
    return client.datastore()["objects"][image_id]["image"]["info"]


def _unlabelled(client):
    return sorted(k for k, v in client.datastore()["objects"].items() if "final" not in (v.get("labels") or {}))


def test_scores_picks_retrains_and_serves_the_new_model(al_client, al_server):
    client, server = al_client, al_server
    info = client.info()
    assert {"report_uncertainty", "report_inconsistency"} <= set(info["strategies"]) and {"report_uncertainty", "report_inconsistency"} <= set(info["scoring"])
    v0 = info["models"]["gleve"]["version"]

    r = requests.post(f"{server.url}/scoring/report_uncertainty", params={"run_sync": "true"}, json={"tta": 1, "device": "cpu"}, timeout=1200)
    assert r.status_code == 200, r.text
    summary = r.json()
    scored = {f"synth_{s:05d}" for s in REPORT_ONLY if s != 20003}
    assert set(summary["scores"]) == scored and summary["executed"] == len(scored), summary
    assert summary["model_version"] == v0

    picked = []
    for round_ in range(2):
        unlabelled = _unlabelled(client)
        stored = {i: _info(client, i).get("report_uncertainty") for i in unlabelled}
        stored = {i: s for i, s in stored.items() if s is not None}
        nxt = client.next_sample("report_uncertainty", {})
        assert nxt["id"] in unlabelled and nxt["id"] not in picked
        assert stored[nxt["id"]] == max(stored.values()), (nxt, stored)
        truth = os.path.join(server.studies, "truth", f"{nxt['id']}_lesions.nii.gz")
        res = client.save_label(nxt["id"], truth, tag="final")
        picked.append(nxt["id"])
        if round_ == 0:
            assert res["retrain"] == {"pending": 1, "after": 2, "models": ["gleve"], "started": False}
        else:
            assert res["retrain"]["started"] and res["retrain"]["run"]["labels"] == picked, res

    # the background training the trigger started: MONAI Label's /train status shows it
    status = wait_for_training(client)
    assert status.get("status") == "DONE", status
    assert status["request"]["model"] == "gleve" and status["request"]["max_epochs"] == 1
    stats = json.load(open(os.path.join(server.model_dir, "gleve", "train_stats.json")))
    assert set(picked) <= set(stats["train_ids"]) and stats["n_weak"] >= 1  # new masks + report-only studies

    v1 = client.info()["models"]["gleve"]["version"]
    assert v1 != v0
    _, params = client.infer("gleve", picked[0], {})
    assert params["model"] == {"name": "gleve", "file": "gleve.pt", "version": v1}
    # the save_label/activelearning writes of the server kept the scores of the studies not yet annotated
    rest = sorted(scored - set(picked))
    assert all(_info(client, i).get("report_uncertainty") is not None for i in rest)
