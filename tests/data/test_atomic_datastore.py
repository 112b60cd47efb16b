"""lib/data/atomic_datastore.py: a label save killed midway leaves the previous label and index intact."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import nibabel as nib
import numpy as np
import pytest

from lib.data.atomic_datastore import AtomicLocalDatastore

APP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "apps", "radground")


def _nifti(path, value: int, shape=(24, 24, 12)):
    nib.save(nib.Nifti1Image(np.full(shape, value, np.uint8), np.eye(4)), str(path))


@pytest.fixture()
def studies(tmp_path):
    """One image with a final label (all ones)."""
    _nifti(tmp_path / "img.nii.gz", 0)
    (tmp_path / "labels" / "final").mkdir(parents=True)
    _nifti(tmp_path / "labels" / "final" / "img.nii.gz", 1)
    return tmp_path


def test_save_label_replaces_the_label_and_records_it(studies, tmp_path_factory):
    ds = AtomicLocalDatastore(str(studies), auto_reload=False)
    src = tmp_path_factory.mktemp("upload") / "new.nii.gz"
    _nifti(src, 2)
    assert ds.save_label("img", str(src), "final", {"user": "x"}) == "img"
    saved = nib.load(str(studies / "labels" / "final" / "img.nii.gz"))
    assert np.all(np.asarray(saved.dataobj) == 2)
    assert oct(os.stat(studies / "labels" / "final" / "img.nii.gz").st_mode & 0o777) == "0o644"
    index = json.load(open(studies / "datastore_v2.json"))
    assert index["objects"]["img"]["labels"]["final"]["info"]["user"] == "x"
    assert ds.get_label_by_image_id("img", "final") == "img"
    assert not [n for n in os.listdir(studies / "labels" / "final") if n.endswith(".partial")]


CHILD = textwrap.dedent("""
    import os, signal, shutil, sys
    sys.path.insert(0, {app!r})
    from monailabel.datastore.local import LocalDatastore
    from lib.data.atomic_datastore import AtomicLocalDatastore

    def killed_midway(fsrc, fdst, length=0):
        # the copy writes half the label to disk, then the process is killed (OOM killer, restart)
        data = fsrc.read()
        fdst.write(data[: len(data) // 2])
        fdst.flush()
        os.fsync(fdst.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    shutil._USE_CP_SENDFILE = False  # LocalDatastore's shutil.copy then goes through copyfileobj too
    shutil.copyfileobj = killed_midway
    cls = AtomicLocalDatastore if {atomic!r} else LocalDatastore
    ds = cls({studies!r}, auto_reload=False)
    ds.save_label("img", {src!r}, "final", {{}})
    print("saved", flush=True)
""")


def _kill_midway(studies, tmp_path_factory, atomic: bool) -> bytes:
    """Save a new label in a process that is SIGKILLed half-way through writing it; returns what
    the final label file holds afterwards."""
    src = tmp_path_factory.mktemp("new") / "new.nii.gz"
    _nifti(src, 3, shape=(64, 64, 64))
    code = CHILD.format(app=APP_DIR, atomic=atomic, studies=str(studies), src=str(src))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])
    assert "saved" not in p.stdout
    return (studies / "labels" / "final" / "img.nii.gz").read_bytes()


def test_a_save_killed_midway_leaves_the_previous_label(studies, tmp_path_factory):
    before = (studies / "labels" / "final" / "img.nii.gz").read_bytes()
    AtomicLocalDatastore(str(studies), auto_reload=False)  # the index as the server had it
    index_before = json.load(open(studies / "datastore_v2.json"))
    after = _kill_midway(studies, tmp_path_factory, atomic=True)
    assert after == before
    assert [n for n in os.listdir(studies / "labels" / "final") if n.endswith(".partial")], "the kill came mid-copy"
    assert np.all(np.asarray(nib.load(str(studies / "labels" / "final" / "img.nii.gz")).dataobj) == 1)
    assert json.load(open(studies / "datastore_v2.json"))["objects"]["img"]["labels"] == index_before["objects"]["img"]["labels"]
    # the next start clears the killed save's staging file and still lists the label
    ds = AtomicLocalDatastore(str(studies), auto_reload=False)
    assert not [n for n in os.listdir(studies / "labels" / "final") if n.endswith(".partial")]
    assert ds.get_label_by_image_id("img", "final") == "img"


def test_monai_labels_own_datastore_would_leave_half_a_label(studies, tmp_path_factory):
    """Why the subclass exists: the same kill against MONAI Label 0.8.5's LocalDatastore truncates
    the stored label (if MONAI Label becomes atomic, this test says the subclass can go)."""
    before = (studies / "labels" / "final" / "img.nii.gz").read_bytes()
    after = _kill_midway(studies, tmp_path_factory, atomic=False)
    assert after != before
