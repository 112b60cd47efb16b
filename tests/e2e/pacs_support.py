"""A real Orthanc PACS for end-to-end tests (tests/e2e/test_orthanc.py, test_ohif.py).

Orthanc + its DICOMweb plugin are installed with apt when missing (services not started; the test
is skipped, with the reason, only when apt cannot install them), run on 127.0.0.1 with remote
access off and the DICOM port closed, and stopped by the fixture that started them.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def apt_install(packages, binary_ok) -> None:
    """``apt-get install`` ``packages`` unless ``binary_ok()``; skip the test when that is impossible."""
    if binary_ok():
        return
    if not shutil.which("apt-get"):
        pytest.skip(f"{' '.join(packages)} not installed and apt-get is not available to install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", RUNLEVEL="1")  # RUNLEVEL=1: maintainer scripts start no service
    proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *packages], env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not binary_ok():
        pytest.skip(f"apt-get could not install {' '.join(packages)}: {proc.stderr[-500:]}")


def dicomweb_plugin():
    for d in PLUGIN_DIRS:
        p = os.path.join(d, "libOrthancDicomWeb.so")
        if os.path.exists(p):
            return p
    return None


def ensure_orthanc() -> str:
    """Path of the Orthanc binary, installing the Debian packages when missing."""
    apt_install(["orthanc", "orthanc-dicomweb"], lambda: bool(shutil.which("Orthanc") and dicomweb_plugin()))
    return shutil.which("Orthanc")


class Process:
    """A background server with its log; stopped with its whole process group."""

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


def run_orthanc(base):
    """Start Orthanc under ``base``; yields its URL (``<url>/dicom-web`` is DICOMweb), then stops it."""
    binary = ensure_orthanc()
    port = free_port()
    config = {
        "Name": "radground-test",
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomServerEnabled": False,
        "StorageDirectory": str(base / "db"),
        "IndexDirectory": str(base / "db"),
        "Plugins": [dicomweb_plugin()],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "Ssl": False},
    }
    cfg = base / "orthanc.json"
    cfg.write_text(json.dumps(config))
    proc = Process([binary, str(cfg)], str(base / "orthanc.log"))
    url = f"http://127.0.0.1:{port}"
    proc.wait_http(f"{url}/system", timeout=60)
    try:
        yield url
    finally:
        proc.stop()


def upload(orthanc: str, paths) -> None:
    """``POST /instances`` each DICOM file."""
    for path in paths:
        with open(path, "rb") as f:
            r = requests.post(f"{orthanc}/instances", data=f.read(), headers={"content-type": "application/dicom"}, timeout=30)
        assert r.status_code == 200, r.text


def dicomweb(orthanc: str):
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(url=f"{orthanc}/dicom-web")
