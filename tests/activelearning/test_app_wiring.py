"""What ``main.py`` adds for active learning: registration behind ``--conf active_learning``,
model versions in ``/info``, the retrain hook on ``on_save_label``, and datastore reloads."""
from __future__ import annotations

import os

import pytest
from monailabel.datastore.local import LocalDatastore

from lib.data.studies import generate_dataset, truth_lesions_path

APP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "apps", "radground")


def _app(root, **conf):
    from main import RadGroundApp

    studies = str(root / "studies")
    if not os.path.exists(studies):
        generate_dataset(studies, [20000, 20001], preset="tiny", report_only_fraction=1.0)
    base = {"models": "lesion_baseline,gleve", "model_dir": str(root / "model"), "skip_trainers": "true"}
    return RadGroundApp(APP_DIR, studies, {**base, **conf})


def test_off_by_default(tmp_path):
    app = _app(tmp_path)
    info = app.info()
    assert set(info["strategies"]) == {"random", "first"} and info["scoring"] == {}
    assert app.retrain_trigger is None
    assert info["models"]["gleve"]["version"] and info["models"]["lesion_baseline"]["version"]  # checkpoint hashes


def test_registered_when_enabled(tmp_path):
    app = _app(tmp_path, active_learning="true")
    info = app.info()
    assert {"report_uncertainty", "report_inconsistency", "model_disagreement"} <= set(info["strategies"])
    assert {"report_uncertainty", "report_inconsistency", "model_disagreement"} <= set(info["scoring"])
    # one lesion model only: nothing to disagree with
    solo = _app(tmp_path, active_learning="true", models="gleve")
    assert "model_disagreement" not in solo.info()["scoring"]


def test_save_label_reaches_the_trigger(tmp_path):
    app = _app(tmp_path, retrain_after="5")
    studies = os.path.dirname(app.datastore()._datastore_config_path)
    label_id = app.datastore().save_label("synth_20000", truth_lesions_path(studies, "synth_20000"), "final", {})
    res = app.on_save_label("synth_20000", label_id)
    assert res["retrain"]["pending"] == 1 and res["retrain"]["started"] is False  # no trainers here: nothing to start
    assert app.retrain_trigger.state()["pending"] == ["synth_20000"]


def test_the_app_sees_what_another_process_wrote(tmp_path):
    app = _app(tmp_path)
    studies = os.path.dirname(app.datastore()._datastore_config_path)
    LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False).update_image_info("synth_20001", {"report_uncertainty": 0.5})
    assert app.datastore().get_image_info("synth_20001")["report_uncertainty"] == 0.5
