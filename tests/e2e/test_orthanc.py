"""Orthanc round trip: a synthetic study as DICOM in a real PACS, radground serving it over DICOMweb,
and the grounding answer stored back as DICOM SEG + TID 1500 SR, then read back.

The test installs Orthanc + its DICOMweb plugin with apt if they are missing (skipped, with the
reason, only when apt cannot install them), starts it on 127.0.0.1 with remote access off and the
DICOM port closed, and stops it at the end. The radground server is started on
``--studies http://127.0.0.1:PORT/dicom-web`` (MONAI Label's DICOMweb datastore) with its cache in
a temp folder.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

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
from lib.writers.dicom_sr import read_findings, seg_and_sr

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins")
STUDY = "synth_20002"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dicomweb_plugin():
    for d in PLUGIN_DIRS:
        p = os.path.join(d, "libOrthancDicomWeb.so")
        if os.path.exists(p):
            return p
    return None


def ensure_orthanc() -> str:
    """Path of the Orthanc binary, installing the Debian packages when missing (services not started)."""
    if shutil.which("Orthanc") and _dicomweb_plugin():
        return shutil.which("Orthanc")
    if not shutil.which("apt-get"):
        pytest.skip("Orthanc is not installed and apt-get is not available to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")  # RUNLEVEL=1: maintainer scripts start no service
    proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "orthanc", "orthanc-dicomweb"], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not shutil.which("Orthanc") or not _dicomweb_plugin():
        pytest.skip(f"apt-get could not install orthanc + orthanc-dicomweb: {proc.stderr[-500:]}")
    return shutil.which("Orthanc")


class _Process:
    def __init__(self, cmd, log, env=None, cwd=None):
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)

    def wait_http(self, url, timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{url}: process exited with {self.proc.returncode}:\n{open(self.log).read()[-4000:]}")
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(1)
        self.stop()
        pytest.fail(f"{url} did not answer in time:\n{open(self.log).read()[-4000:]}")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    binary = ensure_orthanc()
    base = tmp_path_factory.mktemp("orthanc")
    port = _free_port()
    config = {
        "Name": "radground-test",
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "StorageDirectory": str(base / "db"),
        "IndexDirectory": str(base / "db"),
        "Plugins": [_dicomweb_plugin()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "Ssl": False},
    }
    cfg = base / "orthanc.json"
    cfg.write_text(json.dumps(config))
    proc = _Process([binary, str(cfg)], str(base / "orthanc.log"))
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(f"{url}/system", timeout=60)
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def study_in_pacs(orthanc, tmp_path_factory):
    """The synthetic study uploaded as a DICOM CT series + a report SR (REST ``POST /instances``)."""
    base = tmp_path_factory.mktemp("pacs_study")
    studies = str(base / "studies")
    generate_dataset(studies, [20002], preset="small", body="abdomen", report_only_fraction=0.0)
    report = read_report(studies, STUDY)
    dicom = export_study(image_path(studies, STUDY), str(base / "dicom"), STUDY, report)
    for path in dicom.ct_files + [dicom.report_file]:
        with open(path, "rb") as f:
            r = requests.post(f"{orthanc}/instances", data=f.read(), headers={"content-type": "application/dicom"}, timeout=30)
        assert r.status_code == 200, r.text
    return dict(studies=studies, report=report, dicom=dicom)


@pytest.fixture(scope="module")
def server(orthanc, study_in_pacs, tmp_path_factory):
    base = tmp_path_factory.mktemp("dicomweb_server")
    port = _free_port()
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
    proc = _Process(cmd, str(base / "server.log"), env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(f"{url}/info/", timeout=300)
    yield url
    proc.stop()


def _dicomweb(orthanc):
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=f"{orthanc}/dicom-web")


def test_report_round_trips_through_the_pacs(orthanc, study_in_pacs):
    web = _dicomweb(orthanc)
    srs = web.search_for_series(study_in_pacs["dicom"].study_uid, search_filters={"Modality": "SR"})
    (meta,) = srs
    series_uid = pydicom.Dataset.from_json(meta).SeriesInstanceUID
    (sr,) = web.retrieve_series(study_in_pacs["dicom"].study_uid, series_uid)
    assert report_text_of(sr) == study_in_pacs["report"]


def test_ground_over_dicomweb_and_store_seg_and_sr_back(orthanc, study_in_pacs, server, tmp_path):
    from monailabel.client import MONAILabelClient

    dicom = study_in_pacs["dicom"]
    client = MONAILabelClient(server, tmpdir=str(tmp_path))
    # the DICOMweb datastore lists the PACS's CT series (not the report SR), and hands it out as Slicer's "next sample"
    assert requests.get(f"{server}/datastore/?output=stats", timeout=60).json()["total"] == 1
    assert client.next_sample("first", {})["id"] == dicom.ct_series_uid

    web = _dicomweb(orthanc)
    (sr_meta,) = web.search_for_series(dicom.study_uid, search_filters={"Modality": "SR"})
    (report_sr,) = web.retrieve_series(dicom.study_uid, pydicom.Dataset.from_json(sr_meta).SeriesInstanceUID)
    report = report_text_of(report_sr)  # the report as the PACS holds it
    label_file, params = client.infer("gleve", dicom.ct_series_uid, {"report": report})
    grounding = GroundingResult.model_validate(params["grounding"])
    grounded = [f for f in grounding.findings if f.grounded]
    assert grounded, params["lesions"]

    ct = web.retrieve_series(dicom.study_uid, dicom.ct_series_uid)
    ct_file = image_path(study_in_pacs["studies"], STUDY)  # the volume the series was made from (same grid)
    assert sitk.ReadImage(label_file).GetSize() == sitk.ReadImage(ct_file).GetSize()
    seg, sr = seg_and_sr(grounding, label_file, ct_file, ct)
    web.store_instances([seg.dataset, sr])

    # read back from the PACS
    seg_series = web.search_for_series(dicom.study_uid, search_filters={"Modality": "SEG"})
    sr_series = [s for s in web.search_for_series(dicom.study_uid, search_filters={"Modality": "SR"}) if s != sr_meta]
    assert len(seg_series) == 1 and len(sr_series) == 1
    (seg_back,) = web.retrieve_series(dicom.study_uid, pydicom.Dataset.from_json(seg_series[0]).SeriesInstanceUID)
    (sr_back,) = web.retrieve_series(dicom.study_uid, pydicom.Dataset.from_json(sr_series[0]).SeriesInstanceUID)

    names = segment_names(seg_back)
    assert set(names.values()) == {f.label_name for f in grounded if f.label in seg.segment_numbers}
    seg_hd = hd.seg.Segmentation.from_dataset(seg_back)
    assert seg_hd.get_segment_numbers() == sorted(names)
    label = np.transpose(sitk.GetArrayFromImage(sitk.ReadImage(label_file)), (2, 1, 0))
    rows = read_findings(sr_back)
    assert len(rows) == len([f for f in grounded if f.label in seg.segment_numbers])
    for f, row in zip([f for f in grounded if f.label in seg.segment_numbers], rows):
        assert row["sentence"] == f.sentence.text and report[slice(*f.sentence.span)] == f.sentence.text
        assert names[row["segment_number"]] == f.label_name and row["seg_sop_instance_uid"] == seg_back.SOPInstanceUID
        voxel_ml = abs(np.linalg.det(np.asarray(grounding.image.affine)[:3, :3])) / 1000
        assert row["measurements"]["Volume"][0] == pytest.approx((label == f.label).sum() * voxel_ml, abs=1e-3)
