"""The app's request guard in-process (apps/radground/main.py): what is refused before any model runs."""
from __future__ import annotations

import os
import tempfile

import pytest
import torch

from lib.data.studies import generate_dataset
from lib.errors import ImageTooLargeError, MissingReportError, UnknownImageError, UnknownModelError


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from main import RadGroundApp

    root = tmp_path_factory.mktemp("guard")
    studies, model_dir = str(root / "studies"), str(root / "model")
    generate_dataset(studies, [20000, 20001], preset="tiny")
    os.remove(os.path.join(studies, "reports", "synth_20001.txt"))  # a study without a report
    app = RadGroundApp(os.path.join(os.path.dirname(os.path.dirname(__file__)), "apps", "radground"), studies,
                       {"models": "lesion_baseline", "model_dir": model_dir, "max_voxels": "200000"})
    return app


def test_models_are_discovered_from_lib_configs():
    from main import discover_configs

    assert discover_configs()["lesion_baseline"].endswith("lesion_baseline.LesionBaseline")


def test_unknown_model(app):
    with pytest.raises(UnknownModelError, match="available: .*lesion_baseline"):
        app._checked_request({"model": "nope", "image": "synth_20000"}, app.datastore())


@pytest.mark.parametrize("image", ["", "nope", "../synth_20000", "/etc/passwd", os.path.abspath(__file__)])
def test_images_must_be_datastore_ids_or_uploads(app, image):
    with pytest.raises(UnknownImageError):
        app._checked_request({"model": "lesion_baseline", "image": image}, app.datastore())


def test_files_elsewhere_in_the_temp_dir_are_not_uploads(app):
    """A datastore image path under /tmp (pytest's tmp dirs) is not an upload either."""
    path = app.datastore().get_image_uri("synth_20000")
    assert path.startswith(os.path.realpath(tempfile.gettempdir()))
    with pytest.raises(UnknownImageError):
        app._checked_request({"model": "lesion_baseline", "image": path}, app.datastore())


def test_uploads_in_the_temp_dir_are_allowed(app):
    src = app.datastore().get_image_uri("synth_20000")
    with tempfile.NamedTemporaryFile(suffix=".nii.gz", delete=False) as f, open(src, "rb") as s:  # as the endpoint does
        f.write(s.read())
    try:
        req = app._checked_request({"model": "lesion_baseline", "image": f.name}, app.datastore())
        assert "report" not in req  # an upload has no datastore report, and the baseline needs none
    finally:
        os.remove(f.name)


def test_the_stored_report_is_attached_and_parsed(app):
    req = app._checked_request({"model": "lesion_baseline", "image": "synth_20000"}, app.datastore())
    assert req["report"].startswith(("CT", "EXAM")) or "FINDINGS" in req["report"].upper()
    assert req["parsed_report"]["sentences"]


def test_a_task_that_needs_a_report_refuses_a_study_without_one(app, monkeypatch):
    task = app._infers["lesion_baseline"]
    monkeypatch.setattr(task, "needs_report", True, raising=False)
    with pytest.raises(MissingReportError, match="no report"):
        app._checked_request({"model": "lesion_baseline", "image": "synth_20001"}, app.datastore())
    req = app._checked_request({"model": "lesion_baseline", "image": "synth_20001", "report": "Unremarkable pancreas."}, app.datastore())
    assert req["parsed_report"]["sentences"][0]["kind"] == "normal"


def test_size_limit_from_conf(tmp_path_factory):
    from main import RadGroundApp

    root = tmp_path_factory.mktemp("limit")
    generate_dataset(str(root / "s"), [20002], preset="tiny")
    app = RadGroundApp(os.path.join(os.path.dirname(os.path.dirname(__file__)), "apps", "radground"), str(root / "s"),
                       {"models": "lesion_baseline", "model_dir": str(root / "m"), "max_voxels": "1000"})
    with pytest.raises(ImageTooLargeError):
        app._checked_request({"model": "lesion_baseline", "image": "synth_20002"}, app.datastore())
