"""OHIF in a real browser shows a grounding answer: the study in Orthanc, the SEG written by GLeVE.

1. a synthetic study goes into a real Orthanc as a DICOM CT series + its report SR;
2. the app, on the DICOMweb datastore, grounds it with GLeVE (report read from the PACS) and stores
   the SEG + SR back itself (``store_dicom``), exactly the ``/infer`` code path (``app.infer``);
3. the prebuilt OHIF viewer is served with a same-origin proxy of Orthanc's DICOMweb, and headless
   Chromium (playwright-core) opens the study, loads the SEG and opens the Segmentation panel;
4. the DOM must show the study (its CT series in the study browser and the viewport) and the SEG's
   segment names, which must be GLeVE's lesion names; the screenshot is kept in
   ``tests/e2e/artifacts/`` (git-ignored) or ``$RADGROUND_ARTIFACTS``.

Orthanc and Chromium are installed with apt, OHIF and playwright-core with npm into a cache folder,
when missing; the test is skipped, with the reason, only when apt or npm cannot provide them.
"""
from __future__ import annotations

import os
import shutil

import pydicom
import pytest
import torch

from lib.data.dicom_export import export_study
from lib.data.studies import generate_dataset, image_path, read_report
from tests.e2e.ohif_support import OhifServer, ensure_chromium, ensure_ohif, ensure_playwright, view_in_ohif
from tests.e2e.pacs_support import dicomweb, run_orthanc, upload

pytestmark = pytest.mark.slow

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STUDY = "synth_20002"


def artifacts_dir() -> str:
    path = os.environ.get("RADGROUND_ARTIFACTS") or os.path.join(HERE, "artifacts")
    os.makedirs(path, exist_ok=True)
    ignore = os.path.join(path, ".gitignore")
    if not os.path.exists(ignore):
        with open(ignore, "w") as f:
            f.write("*\n")
    return path


@pytest.fixture(scope="module")
def browser_tools():
    """Chromium, OHIF's dist/ and playwright-core, before anything heavy runs (a skip costs nothing)."""
    ensure_chromium()
    return {"dist": ensure_ohif(), "node_modules": ensure_playwright()}


@pytest.fixture(scope="module")
def orthanc(browser_tools, tmp_path_factory):
    yield from run_orthanc(tmp_path_factory.mktemp("orthanc"))


@pytest.fixture(scope="module")
def grounded_study(orthanc, tmp_path_factory):
    """The study in the PACS, grounded by GLeVE through the app with ``store_dicom``."""
    from monailabel.config import settings

    from main import RadGroundApp

    base = tmp_path_factory.mktemp("ohif_study")
    studies = str(base / "studies")
    generate_dataset(studies, [20002], preset="small", body="abdomen", report_only_fraction=0.0)
    dicom = export_study(image_path(studies, STUDY), str(base / "dicom"), STUDY, read_report(studies, STUDY))
    upload(orthanc, dicom.ct_files + [dicom.report_file])

    cache_setting, threads = settings.MONAI_LABEL_DICOMWEB_CACHE_PATH, torch.get_num_threads()
    torch.set_num_threads(1)  # a shared CI CPU, as the servers of the other e2e tests run
    settings.MONAI_LABEL_DICOMWEB_CACHE_PATH = str(base / "cache")  # the DICOMweb datastore's cache, as the server's env var sets it
    try:
        app = RadGroundApp(os.path.join(ROOT, "apps", "radground"), f"{orthanc}/dicom-web",
                           {"models": "anatomy,gleve", "model_dir": str(base / "model"), "skip_trainers": "true"})
        answer = app.infer({"model": "gleve", "image": dicom.ct_series_uid, "store_dicom": True})
    finally:
        settings.MONAI_LABEL_DICOMWEB_CACHE_PATH = cache_setting
        torch.set_num_threads(threads)
    stored = answer["params"]["dicom"]
    assert stored["stored"], stored
    (seg,) = dicomweb(orthanc).retrieve_series(dicom.study_uid, stored["seg"]["series_uid"])
    return {"dicom": dicom, "answer": answer["params"], "seg": seg}


def test_ohif_shows_the_study_and_the_grounded_segments(orthanc, grounded_study, browser_tools, tmp_path):
    dicom, seg = grounded_study["dicom"], grounded_study["seg"]
    labels = [str(s.SegmentLabel) for s in seg.SegmentSequence]
    # the SEG's segments are GLeVE's grounded lesions, named as its answer names them
    assert labels and set(labels) == {e["label_name"] for e in grounded_study["answer"]["lesions"] if e["label"] is not None}

    shot = str(tmp_path / "ohif_seg.png")
    with OhifServer(browser_tools["dist"], orthanc) as viewer:
        seen = view_in_ohif(browser_tools["node_modules"], f"{viewer.url}/viewer?StudyInstanceUIDs={dicom.study_uid}", shot,
                            {"seg": str(seg.SeriesDescription)})
    kept = os.path.join(artifacts_dir(), "ohif_seg.png")
    if os.path.exists(shot):
        shutil.copyfile(shot, kept)
        print(f"OHIF screenshot: {kept}")
    assert seen.get("ok"), f"{seen.get('error')}\n{seen.get('body_text')}"
    # the study: its CT series and the SEG in the study browser, the CT in the viewport
    ct = pydicom.dcmread(dicom.ct_files[0], stop_before_pixels=True)
    assert ct.SeriesDescription in seen["series"] and seg.SeriesDescription in seen["series"]
    assert {"CT", "SEG"} <= set(seen["modalities"])
    assert any(ct.SeriesDescription in t for t in seen["overlay"])
    # the Segmentation panel lists the SEG, by segment label, in segment order
    assert seen["segmentation"] == [seg.SeriesDescription]
    assert seen["segments"] == labels
    with open(kept, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
