"""Orthanc round trip: a synthetic study as DICOM in a real PACS, radground serving it over DICOMweb
(the report read from the study's SR in the PACS), the server storing its grounding answer back as
DICOM SEG + TID 1500 SR (``store_dicom``) and a label saved as Slicer saves it as a SEG, all read back.

Orthanc comes from :mod:`tests.e2e.pacs_support` (installed with apt when missing, started on
127.0.0.1 with remote access off and the DICOM port closed, stopped at the end). The radground server is started on
``--studies http://127.0.0.1:PORT/dicom-web`` (MONAI Label's DICOMweb datastore) with its cache in
a temp folder.
"""
from __future__ import annotations

import json
import os
import sys

import highdicom as hd
import numpy as np
import pydicom
import pytest
import requests
import SimpleITK as sitk

from lib.data.dicom_export import export_study, report_text_of
from lib.data.studies import generate_dataset, image_path, read_report
from lib.schema import GroundingResult
from lib.writers.dicom_seg import segment_names
from lib.writers.dicom_sr import read_findings
from tests.e2e.pacs_support import Process, dicomweb, free_port, run_orthanc, upload

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STUDY = "synth_20002"


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    yield from run_orthanc(tmp_path_factory.mktemp("orthanc"))


@pytest.fixture(scope="module")
def study_in_pacs(orthanc, tmp_path_factory):
    """The synthetic study uploaded as a DICOM CT series + a report SR (REST ``POST /instances``)."""
    base = tmp_path_factory.mktemp("pacs_study")
    studies = str(base / "studies")
    generate_dataset(studies, [20002], preset="small", body="abdomen", report_only_fraction=0.0)
    report = read_report(studies, STUDY)
    dicom = export_study(image_path(studies, STUDY), str(base / "dicom"), STUDY, report)
    upload(orthanc, dicom.ct_files + [dicom.report_file])
    return dict(studies=studies, report=report, dicom=dicom)


@pytest.fixture(scope="module")
def server(orthanc, study_in_pacs, tmp_path_factory):
    base = tmp_path_factory.mktemp("dicomweb_server")
    port = free_port()
    env = dict(
        os.environ,
        MONAI_LABEL_DATASTORE_AUTO_RELOAD="false",
        MONAI_LABEL_DICOMWEB_CACHE_PATH=str(base / "cache"),
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", os.path.join(ROOT, "apps", "radground"),
           "--studies", f"{orthanc}/dicom-web", "--host", "127.0.0.1", "--port", str(port),
           "--conf", "models", "anatomy,gleve", "--conf", "model_dir", str(base / "model"), "--conf", "skip_trainers", "true"]
    proc = Process(cmd, str(base / "server.log"), env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(f"{url}/info/", timeout=300)
    yield url
    proc.stop()


def test_report_round_trips_through_the_pacs(orthanc, study_in_pacs):
    web = dicomweb(orthanc)
    srs = web.search_for_series(study_in_pacs["dicom"].study_uid, search_filters={"Modality": "SR"})
    (meta,) = srs
    series_uid = pydicom.Dataset.from_json(meta).SeriesInstanceUID
    (sr,) = web.retrieve_series(study_in_pacs["dicom"].study_uid, series_uid)
    assert report_text_of(sr) == study_in_pacs["report"]


def _series(web, study_uid, modality):
    return [pydicom.Dataset.from_json(m).SeriesInstanceUID for m in web.search_for_series(study_uid, search_filters={"Modality": modality})]


def test_report_from_the_pacs_and_the_server_stores_seg_and_sr(orthanc, study_in_pacs, server, tmp_path):
    """No report in the request: the server reads the study's report SR from the PACS, grounds it,
    and (``store_dicom``) stores the SEG + TID 1500 SR back itself; both are read back here."""
    from monailabel.client import MONAILabelClient

    dicom, report = study_in_pacs["dicom"], study_in_pacs["report"]
    client = MONAILabelClient(server, tmpdir=str(tmp_path))
    # the DICOMweb datastore lists the PACS's CT series (not the report SR), and hands it out as Slicer's "next sample"
    assert requests.get(f"{server}/datastore/?output=stats", timeout=60).json()["total"] == 1
    assert client.next_sample("first", {})["id"] == dicom.ct_series_uid

    web = dicomweb(orthanc)
    (report_series,) = _series(web, dicom.study_uid, "SR")
    label_file, params = client.infer("gleve", dicom.ct_series_uid, {"store_dicom": True})
    grounding = GroundingResult.model_validate(params["grounding"])
    grounded = [f for f in grounding.findings if f.grounded]
    assert grounded, params["lesions"]
    assert all(report[slice(*f.sentence.span)] == f.sentence.text for f in grounding.findings)  # the PACS's report, verbatim
    stored = params["dicom"]
    assert stored["stored"] is True and stored["study_uid"] == dicom.study_uid

    # read back from the PACS: one SEG, and one SR beside the report
    (seg_uid,) = _series(web, dicom.study_uid, "SEG")
    (sr_uid,) = [u for u in _series(web, dicom.study_uid, "SR") if u != report_series]
    assert (seg_uid, sr_uid) == (stored["seg"]["series_uid"], stored["sr"]["series_uid"])
    (seg_back,) = web.retrieve_series(dicom.study_uid, seg_uid)
    (sr_back,) = web.retrieve_series(dicom.study_uid, sr_uid)
    names = segment_names(seg_back)
    assert set(names.values()) == {f.label_name for f in grounded} == set(stored["seg"]["segments"].values())
    assert seg_back.ContentLabel == "GROUNDING" and seg_back.ReferencedSeriesSequence[0].SeriesInstanceUID == dicom.ct_series_uid
    seg_hd = hd.seg.Segmentation.from_dataset(seg_back)
    assert seg_hd.get_segment_numbers() == sorted(names)
    label = np.transpose(sitk.GetArrayFromImage(sitk.ReadImage(label_file)), (2, 1, 0))
    ct_file = image_path(study_in_pacs["studies"], STUDY)  # the volume the series was made from (same grid)
    assert label.shape == sitk.ReadImage(ct_file).GetSize()
    rows = read_findings(sr_back)
    assert [r["sentence"] for r in rows] == [f.sentence.text for f in grounded]
    voxel_ml = abs(np.linalg.det(np.asarray(grounding.image.affine)[:3, :3])) / 1000
    for f, row in zip(grounded, rows):
        assert names[row["segment_number"]] == f.label_name and row["seg_sop_instance_uid"] == seg_back.SOPInstanceUID
        assert row["measurements"]["Volume"][0] == pytest.approx((label == f.label).sum() * voxel_ml, abs=1e-3)

    # a model's answer in the PACS is not a finished label; a label saved as Slicer saves it is
    assert requests.get(f"{server}/datastore/?output=stats", timeout=60).json()["completed"] == 0
    label_info = [{"name": n, "idx": v} for n, v in params["label_names"].items()]
    client.save_label(dicom.ct_series_uid, label_file, "final", {"label_info": label_info, "model": "gleve"})
    finals = [u for u in _series(web, dicom.study_uid, "SEG") if u != seg_uid]
    assert len(finals) == 1
    (final,) = web.retrieve_series(dicom.study_uid, finals[0])
    assert final.ContentLabel == "FINAL" and set(segment_names(final).values()) == set(params["label_names"])
    assert requests.get(f"{server}/datastore/?output=stats", timeout=60).json()["completed"] == 1


def test_store_dicom_of_an_upload_is_refused(server, study_in_pacs):
    """An uploaded file has no series in the PACS to reference: 422 before any model runs."""
    with open(image_path(study_in_pacs["studies"], STUDY), "rb") as f:
        r = requests.post(f"{server}/infer/gleve", params={"output": "json"}, files={"file": ("ct.nii.gz", f.read())},
                          data={"params": json.dumps({"store_dicom": True, "report": study_in_pacs["report"]})}, timeout=120)
    assert r.status_code == 422 and "store_dicom" in r.json()["detail"]
