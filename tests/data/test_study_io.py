"""Datastore layout: write/read round trip, report-only mode, splits, CLI."""
from __future__ import annotations

import json
import os
import sys

import nibabel as nib
import numpy as np
import pytest

from lib.data import studies as st

from .conftest import study

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(path):
    img = nib.load(path)
    return img, np.asanyarray(img.dataobj)


def test_write_read_round_trip(tmp_path):
    s = study(5, "tiny")
    paths = st.write_study(s, str(tmp_path))
    img, arr = _load(st.image_path(str(tmp_path), s.study_id))
    assert arr.dtype == np.int16 and arr.shape == s.image.shape and np.array_equal(arr, s.image)
    assert np.allclose(img.affine, s.affine)
    assert tuple(float(v) for v in img.header.get_zooms()) == s.spacing
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")  # i: right->left, j: anterior->posterior
    for key, ref in (("label", s.lesions), ("truth_lesions", s.lesions), ("organs", s.organs)):
        limg, larr = _load(paths[key])
        assert larr.dtype == np.uint8 and np.array_equal(larr, ref) and np.allclose(limg.affine, s.affine)
    assert paths["label"] == os.path.join(str(tmp_path), "labels", "final", f"{s.study_id}.nii.gz")
    assert st.read_report(str(tmp_path), s.study_id) == s.report
    assert st.report_path(str(tmp_path), s.study_id).endswith(os.path.join("reports", f"{s.study_id}.txt"))
    truth = st.read_truth(str(tmp_path), s.study_id)
    assert truth["lesions"] == json.loads(json.dumps(s.truth["lesions"]))
    assert truth["report_only"] is False
    hidden = [n for _, _, fs in os.walk(tmp_path) for n in fs if n.startswith(".")]
    assert hidden == []  # no temp files left behind
    assert st.list_studies(str(tmp_path)) == [s.study_id]


def test_report_only_mode(tmp_path):
    s = study(6, "tiny")
    st.write_study(s, str(tmp_path), with_label=True)
    assert os.path.exists(st.label_path(str(tmp_path), s.study_id))
    st.write_study(s, str(tmp_path), with_label=False)  # regenerated as report-only: stale label removed
    assert not os.path.exists(st.label_path(str(tmp_path), s.study_id))
    assert os.path.exists(st.truth_lesions_path(str(tmp_path), s.study_id))
    assert st.read_truth(str(tmp_path), s.study_id)["report_only"] is True
    assert st.read_report(str(tmp_path), s.study_id) == s.report


def test_missing_sidecars(tmp_path):
    assert st.read_report(str(tmp_path), "nope") is None
    assert st.read_truth(str(tmp_path), "nope") is None
    assert st.list_studies(str(tmp_path / "absent")) == []


def test_splits_are_disjoint():
    sets = {k: set(v) for k, v in st.SPLITS.items()}
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    assert min(sets["test"]) >= 20000 and max(sets["train"]) < 10000
    assert st.split_seeds("test", 3) == [20000, 20001, 20002]
    assert st.split_of(20005) == "test" and st.split_of(15000) is None
    with pytest.raises(ValueError):
        st.split_seeds("val", 2000)


def test_report_only_selection():
    frac = np.mean([st.is_report_only(s, 0.5) for s in range(400)])
    assert 0.4 < frac < 0.6
    assert [st.is_report_only(s, 0.5) for s in range(50)] == [st.is_report_only(s, 0.5) for s in range(50)]
    assert not st.is_report_only(3, 0.0) and st.is_report_only(3, 1.0)


def test_generate_dataset_explicit_report_only(tmp_path):
    out = st.generate_dataset(str(tmp_path), [20000, 20001], preset="tiny", report_only_fraction={20001})
    assert [o["report_only"] for o in out] == [False, True]
    assert os.path.exists(st.label_path(str(tmp_path), "synth_20000"))
    assert not os.path.exists(st.label_path(str(tmp_path), "synth_20001"))
    assert all(o["split"] == "test" for o in out)


def test_cli(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import generate_studies
    finally:
        sys.path.pop(0)
    rc = generate_studies.main(["--out", str(tmp_path), "--n", "2", "--preset", "tiny", "--split", "val", "--report-only-fraction", "1.0"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "synth_10000" in out and "synth_10001" in out and "2 report-only" in out
    assert st.list_studies(str(tmp_path)) == ["synth_10000", "synth_10001"]
    assert not os.path.isdir(os.path.join(str(tmp_path), "labels", "final")) or not os.listdir(os.path.join(str(tmp_path), "labels", "final"))
