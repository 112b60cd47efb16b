"""``RetrainTrigger``: counts distinct final labels, starts the train task at N, one at a time."""
from __future__ import annotations

import os
import time

import nibabel as nib
import numpy as np
import pytest

from lib.activelearning.trigger import RetrainTrigger


class FakeApp:
    """What the trigger uses of the MONAI Label app: its datastore, trainers and async_training."""

    def __init__(self, datastore, trainers=("gleve",), accept=True):
        self.ds, self._trainers, self.accept, self.calls = datastore, {t: object() for t in trainers}, accept, []

    def datastore(self):
        return self.ds

    def async_training(self, model, params=None, enqueue=False):
        self.calls.append((model, params, enqueue))
        return {"id": f"task-{len(self.calls)}"} if self.accept else None


def _save_final(ds, image_id, tag="final"):
    f = os.path.join(os.path.dirname(ds._datastore_config_path), f"_{image_id}.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), f)
    return ds.save_label(image_id, f, tag, {})


def test_starts_after_n_distinct_final_labels(datastore, tmp_path):
    app = FakeApp(datastore)
    trig = RetrainTrigger(2, ["gleve", "not_served"], str(tmp_path / "state.json"), params={"max_epochs": 1}, busy=lambda: False)
    assert trig.label_saved(app, "s1", _save_final(datastore, "s1"))["pending"] == 1
    assert trig.label_saved(app, "s1", _save_final(datastore, "s1"))["pending"] == 1  # same study twice counts once
    assert trig.label_saved(app, "s2", _save_final(datastore, "s2", tag="organs")) == {}  # not a final label
    assert app.calls == []
    status = trig.label_saved(app, "s2", _save_final(datastore, "s2"))
    assert status["started"] and status["pending"] == 0
    assert app.calls == [("gleve", {"gleve": {"max_epochs": 1}}, False)]  # models the app does not serve are left out
    state = RetrainTrigger(2, ["gleve"], str(tmp_path / "state.json")).state()  # persisted
    assert state["pending"] == [] and state["runs"][0]["labels"] == ["s1", "s2"]


def test_waits_while_a_training_runs_then_starts(datastore, tmp_path):
    app = FakeApp(datastore)
    busy = {"v": True}
    trig = RetrainTrigger(1, ["gleve"], str(tmp_path / "state.json"), busy=lambda: busy["v"], poll_s=0.05)
    status = trig.label_saved(app, "s1", _save_final(datastore, "s1"))
    assert not status["started"] and "waiting" in status and app.calls == []
    busy["v"] = False
    deadline = time.time() + 5
    # the watcher calls async_training, then saves the state: wait for both (CI once read between them)
    while (not app.calls or trig.state()["pending"]) and time.time() < deadline:
        time.sleep(0.05)
    assert [c[0] for c in app.calls] == ["gleve"]
    assert trig.state()["pending"] == []


def test_a_refused_start_keeps_the_count(datastore, tmp_path):
    app = FakeApp(datastore, accept=False)
    trig = RetrainTrigger(1, ["gleve"], str(tmp_path / "state.json"), busy=lambda: False)
    status = trig.label_saved(app, "s1", _save_final(datastore, "s1"))
    assert not status["started"] and trig.state()["pending"] == ["s1"]


def test_from_conf():
    assert RetrainTrigger.from_conf({}, "/tmp") is None
    t = RetrainTrigger.from_conf({"retrain_after": "3", "retrain_models": "gleve,lesion_baseline", "retrain_params": '{"gleve": {"max_epochs": 2}}'}, "/tmp")
    assert t.after == 3 and t.models == ["gleve", "lesion_baseline"]
    assert t.params_for("gleve") == {"max_epochs": 2} and t.params_for("lesion_baseline") == {}
    with pytest.raises(ValueError):
        RetrainTrigger.from_conf({"retrain_after": "2", "retrain_params": "not json"}, "/tmp")


def test_labels_of_studies_no_retrained_model_trains_on_are_not_counted(datastore, tmp_path):
    """A corrected chest study must not retrain GLeVE (abdominal studies only)."""
    import json

    from lib.trainers.gleve import GleveTrain

    root = os.path.dirname(datastore.get_image_uri("s1"))
    os.makedirs(os.path.join(root, "truth"), exist_ok=True)
    for sid, body in (("s1", "chest"), ("s2", "abdomen")):
        with open(os.path.join(root, "truth", f"{sid}.json"), "w") as f:
            json.dump({"region": body}, f)
    app = FakeApp(datastore)
    app._trainers = {"gleve": GleveTrain}  # what the trigger reads: its body_parts
    trig = RetrainTrigger(1, ["gleve"], str(tmp_path / "state.json"), busy=lambda: False)
    status = trig.label_saved(app, "s1", _save_final(datastore, "s1"))
    assert not status["started"] and "chest" in status["ignored"] and app.calls == []
    status = trig.label_saved(app, "s2", _save_final(datastore, "s2"))
    assert status["started"] and [c[0] for c in app.calls] == ["gleve"]
    status = trig.label_saved(app, "s3", _save_final(datastore, "s3"))  # no truth: unknown body part, counted
    assert status["started"]
