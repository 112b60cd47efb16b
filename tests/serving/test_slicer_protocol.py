"""The REST conversation of 3D Slicer's MONAI Label module, replayed against a real radground server.

The calls, form fields and params are those of the module's client
(``plugins/slicer/MONAILabel/MONAILabelLib/client.py`` and ``MONAILabel.py`` in Project-MONAI/MONAILabel):
``http.client`` requests, multipart bodies with the module's own boundary, a ``params`` form field
holding JSON with ``client_id``, and the module's ``infer`` adding ``result_extension=.nrrd`` and
``result_dtype=uint8`` to the options panel's values (the model's ``config`` from ``/info``, first
item of list values). Answers are parsed the way the module parses them (``cgi.FieldStorage`` on
the multipart reply) and checked for what the module then does with them:

* ``/info/``: no top-level ``config`` (the module refuses such a server), every model with a
  ``type`` and a ``config`` dict;
* ``/infer/{model}``: a ``.nrrd`` label the module reads with SimpleITK, on the image's grid, and
  ``params["label_names"]`` whose names, sorted by value, line up with the label values in the file
  (``ImportLabelmapToSegmentationNode`` assigns the i-th name to the i-th value);
* ``/datastore/label`` save with ``label_info`` (segment names + indices), then ``/datastore/?output=all``
  and ``/datastore/label?label=..&tag=final`` to read it back;
* ``/train/``: start and stop, with the module's status polling.

The report text goes in ``params["report"]``, as the options panel's ``report`` entry (advertised in
``/info``) sends it; left empty, the study's stored report is used.
"""
from __future__ import annotations

import cgi
import http.client
import json
import mimetypes
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import quote_plus, urlparse

import numpy as np
import pytest
import SimpleITK as sitk

from lib.data.studies import generate_dataset, read_report
from lib.schema import GroundingResult

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOUNDARY = "----------lImIt_of_THE_fIle_eW_$"  # the module's multipart boundary
CLIENT_ID = "user-xyz"  # the module's default client id
IMAGE = "synth_20002"


class SlicerModuleClient:
    """The Slicer module's HTTP layer, as it is written there (http.client + hand-made multipart)."""

    def __init__(self, url: str, tmpdir: str):
        self.url, self.tmpdir = url.rstrip("/"), tmpdir

    def _conn(self):
        p = urlparse(self.url)
        return http.client.HTTPConnection(p.hostname, p.port, timeout=600)

    def _response(self, conn):
        r = conn.getresponse()
        ctype = r.getheader("content-type", "application/json")
        if "multipart" in ctype and r.status == 200:
            fs = cgi.FieldStorage(fp=r.fp, environ={"REQUEST_METHOD": "POST"}, headers=r.msg, keep_blank_values=True)
            form, files = {}, {}
            for f in fs.list or []:
                (files if f.filename else form)[f.filename or f.name] = f.value
            return r.status, form, files, r.headers
        return r.status, r.read(), None, r.headers

    def method(self, verb: str, selector: str, body=None):
        headers = {}
        if body:
            body = json.dumps(body) if isinstance(body, dict) else body
            headers = {"content-type": "application/json", "content-length": str(len(body))}
        conn = self._conn()
        conn.request(verb, selector, body=body, headers=headers)
        return self._response(conn)

    def multipart(self, verb: str, selector: str, fields: dict, files: dict):
        lines = []
        for k, v in fields.items():
            lines += ["--" + BOUNDARY, f'Content-Disposition: form-data; name="{k}"', "", v]
        for k, path in files.items():
            with open(path, "rb") as f:
                data = f.read()
            ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
            lines += ["--" + BOUNDARY, f'Content-Disposition: form-data; name="{k}"; filename="{path}"', f"Content-Type: {ctype}", "", data]
        lines += ["--" + BOUNDARY + "--", ""]
        body = bytearray()
        for line in lines:
            body.extend(line if isinstance(line, bytes) else line.encode("utf-8"))
            body.extend(b"\r\n")
        headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", "content-length": str(len(body))}
        conn = self._conn()
        conn.request(verb, selector, body, headers)
        return self._response(conn)

    # ---- the module's calls
    def info(self):
        status, body, _, _ = self.method("GET", "/info/")
        assert status == 200, body
        return json.loads(body)

    def datastore(self):
        status, body, _, _ = self.method("GET", "/datastore/?output=all")
        assert status == 200, body
        return json.loads(body)

    def infer(self, model: str, image_id: str, params: dict):
        params = dict(params, client_id=CLIENT_ID, result_extension=".nrrd", result_dtype="uint8")
        selector = f"/infer/{quote_plus(model)}?image={quote_plus(image_id)}"
        status, form, files, _ = self.multipart("POST", selector, {"params": json.dumps(params)}, {})
        if status != 200:
            return status, None, form
        form = json.loads(form) if isinstance(form, str) else form
        out = form.get("params") if files else form
        out = json.loads(out) if isinstance(out, (str, bytes)) else out
        result_file = None
        for name, data in (files or {}).items():  # the module keeps the server's file name
            result_file = os.path.join(self.tmpdir, name)
            with open(result_file, "wb") as f:
                f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
            break
        return status, result_file, out

    def save_label(self, image_id: str, label_in: str, params: dict):
        selector = f"/datastore/label?image={quote_plus(image_id)}"
        status, body, _, _ = self.multipart("PUT", selector, {"params": json.dumps(dict(params, client_id=CLIENT_ID))}, {"label": label_in})
        assert status == 200, body
        return json.loads(body)

    def download_label(self, label_id: str, tag: str):
        status, body, _, headers = self.method("GET", f"/datastore/label?label={quote_plus(label_id)}&tag={quote_plus(tag)}")
        assert status == 200, body
        return body, headers.get("content-disposition")

    def train_start(self, model: str, params: dict):
        status, body, _, _ = self.method("POST", f"/train/{quote_plus(model)}", dict(params, client_id=CLIENT_ID))
        return status, json.loads(body)

    def train_status(self, check_if_running=False):
        status, body, _, _ = self.method("GET", "/train/" + ("?check_if_running=true" if check_if_running else ""))
        return status == 200 if check_if_running else json.loads(body)

    def train_stop(self):
        status, body, _, _ = self.method("DELETE", "/train/")
        return status, body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("slicer")
    studies, model_dir, log = str(base / "studies"), str(base / "model"), str(base / "server.log")
    generate_dataset(studies, [20002, 20003], preset="small", body="abdomen", report_only_fraction=0.0)
    os.remove(os.path.join(studies, "labels", "final", f"{IMAGE}.nii.gz"))  # the study the radiologist labels
    port = _free_port()
    env = dict(os.environ, MONAI_LABEL_DATASTORE_AUTO_RELOAD="false", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    cmd = [sys.executable, "-m", "monailabel.main", "start_server", "--app", os.path.join(ROOT, "apps", "radground"), "--studies", studies,
           "--host", "127.0.0.1", "--port", str(port), "--conf", "models", "lesion_baseline,anatomy,gleve", "--conf", "model_dir", model_dir]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    client = SlicerModuleClient(url, str(tmp_path_factory.mktemp("slicer_client")))
    deadline = time.time() + 300
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{open(log).read()[-4000:]}")
        try:
            client.info()
            break
        except (OSError, AssertionError):
            if time.time() > deadline:
                os.killpg(proc.pid, signal.SIGTERM)
                pytest.fail(f"server did not answer in time:\n{open(log).read()[-4000:]}")
            time.sleep(1)
    yield client, studies
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _options_panel(info: dict, model: str) -> dict:
    """What the module's options panel sends: the model's config, first item of list values."""
    return {k: v[0] if isinstance(v, list) else v for k, v in info["models"][model].get("config", {}).items()}


def _segments_as_slicer_names_them(result_file: str, label_names: dict):
    """(names sorted by label value without 'background', label values present in the file)."""
    names = [k for k, _ in sorted(label_names.items(), key=lambda kv: kv[1]) if k != "background"]
    values = [int(v) for v in np.unique(sitk.GetArrayFromImage(sitk.ReadImage(result_file))) if v != 0]
    return names, values


def test_info_and_datastore_parse_as_the_module_expects(server):
    client, _ = server
    info = client.info()
    assert not info.get("config"), "the module refuses a server whose /info has a top-level 'config'"
    for name in ("lesion_baseline", "gleve"):
        m = info["models"][name]
        assert m.get("type", "segmentation") == "segmentation" and isinstance(m.get("config", {}), dict)
    assert "gleve" in info.get("trainers", {})
    # the report text field of the options panel: a string entry on the grounding task, none on the segmenter
    assert info["models"]["gleve"]["config"]["report"] == "" and "report" not in info["models"]["lesion_baseline"]["config"]
    objects = client.datastore()["objects"]
    assert {IMAGE, "synth_20003"} <= set(objects)


def test_infer_gleve_with_the_report_in_params(server):
    client, studies = server
    info = client.info()
    report = read_report(studies, IMAGE)
    status, result_file, params = client.infer("gleve", IMAGE, dict(_options_panel(info, "gleve"), report=report))
    assert status == 200 and result_file and result_file.endswith(".nrrd"), params
    label = sitk.ReadImage(result_file)
    image = sitk.ReadImage(os.path.join(studies, f"{IMAGE}.nii.gz"))
    assert label.GetSize() == image.GetSize() and label.GetPixelID() == sitk.sitkUInt8
    assert np.allclose(label.GetOrigin(), image.GetOrigin(), atol=1e-3) and np.allclose(label.GetDirection(), image.GetDirection(), atol=1e-6)
    names, values = _segments_as_slicer_names_them(result_file, params["label_names"])
    assert len(names) == len(values) and sorted(params["label_names"].values()) == values  # the i-th name is the i-th value
    g = GroundingResult.model_validate(params["grounding"])
    assert g.model.name == "gleve" and g.label_names() == params["label_names"]
    assert all(report[slice(*f.sentence.span)] == f.sentence.text for f in g.findings)
    assert [f.sentence.text for f in g.findings] == [e["sentence"] for e in params["lesions"]]


def test_an_empty_report_field_grounds_the_studys_stored_report(server):
    """The options panel as shown, nothing typed: ``report: ""`` goes out, and the stored report is used."""
    client, studies = server
    info = client.info()
    panel = _options_panel(info, "gleve")
    assert panel["report"] == ""
    status, result_file, params = client.infer("gleve", IMAGE, panel)
    assert status == 200 and result_file, params
    report = read_report(studies, IMAGE)
    assert params["lesions"] and all(report[slice(*e["span"])] == e["sentence"] for e in params["lesions"])


def test_infer_without_report_and_a_bad_report_are_clear_answers(server):
    client, _ = server
    info = client.info()
    status, result_file, params = client.infer("lesion_baseline", IMAGE, _options_panel(info, "lesion_baseline"))
    assert status == 200 and result_file.endswith(".nrrd")
    names, values = _segments_as_slicer_names_them(result_file, params["label_names"])
    assert set(values) <= {1} and names[: len(values)] == ["lesion"][: len(values)]
    status, _, body = client.infer("gleve", IMAGE, dict(_options_panel(info, "gleve"), report="   "))
    assert status == 422 and b"report" in (body if isinstance(body, bytes) else str(body).encode())


def test_save_label_as_the_module_does_then_read_it_back(server):
    client, studies = server
    info = client.info()
    _, result_file, params = client.infer("gleve", IMAGE, dict(_options_panel(info, "gleve"), report=read_report(studies, IMAGE)))
    names = [k for k, _ in sorted(params["label_names"].items(), key=lambda kv: kv[1])]
    label_info = [{"name": n, "idx": i + 1} for i, n in enumerate(names)]
    res = client.save_label(IMAGE, result_file, {"label_info": label_info, "model": "gleve"})
    assert res.get("image") == IMAGE
    objects = client.datastore()["objects"]
    final = objects[IMAGE]["labels"]["final"]
    assert final["info"]["label_info"] == label_info and final["info"]["model"] == "gleve"
    data, disposition = client.download_label(IMAGE, "final")
    assert disposition and ".nrrd" in disposition
    path = os.path.join(client.tmpdir, "downloaded.nrrd")
    with open(path, "wb") as f:
        f.write(data)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(path)), sitk.GetArrayFromImage(sitk.ReadImage(result_file)))


def test_train_start_status_and_stop(server):
    """Start and stop at once (no training on a shared CPU): the answers parse as the module reads them."""
    client, _ = server
    status, started = client.train_start("gleve", {"max_epochs": 1000})  # still running when asked; stopped at once
    assert status == 200 and isinstance(started, dict), started
    try:
        deadline = time.time() + 30  # MONAI Label answers "running" once the background process is up
        while not client.train_status(check_if_running=True) and time.time() < deadline:
            time.sleep(0.5)
        assert client.train_status(check_if_running=True)
        assert client.train_status().get("status") in ("SUBMITTED", "RUNNING")
    finally:
        code, body = client.train_stop()
    assert code == 200, body
    deadline = time.time() + 60
    while client.train_status(check_if_running=True) and time.time() < deadline:
        time.sleep(1)
    assert not client.train_status(check_if_running=True)
    assert client.train_status().get("status") in ("STOPPED", "ERROR", "DONE")
