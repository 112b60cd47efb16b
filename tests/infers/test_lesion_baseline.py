"""The lesion_baseline infer task in-process: input grid kept, orientation undone, no stub weights."""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import torch

from lib.configs.lesion_baseline import LesionBaseline
from lib.data.synthetic import generate_study
from lib.errors import ModelNotReadyError


@pytest.fixture(scope="module")
def study():
    return generate_study(20001, "tiny")


def _task(tmp_path, with_checkpoint=True):
    cfg = LesionBaseline()
    cfg.init("lesion_baseline", str(tmp_path), {}, None)
    cfg.path = [os.path.join(str(tmp_path), "lesion_baseline.pt")]  # never the bundled weights here
    if with_checkpoint:
        torch.manual_seed(0)
        torch.save({"model": cfg.network.state_dict()}, cfg.path[0])
    return cfg.infer()["lesion_baseline"]


def _save(tmp_path, name, array, affine):
    p = str(tmp_path / name)
    nib.save(nib.Nifti1Image(array, affine), p)
    return p


def test_label_comes_back_on_the_input_grid_for_any_orientation(tmp_path, study):
    task = _task(tmp_path)
    lps = _save(tmp_path, "lps.nii.gz", study.image, study.affine)
    # Same volume stored RAS (first two axes flipped): the label must come back flipped the same way.
    ras_affine = study.affine.copy()
    ras_affine[:2, :2] *= -1
    ras_affine[:2, 3] = study.affine[:2, :3] @ (np.array(study.image.shape[:3]) - 1) + study.affine[:2, 3]
    ras = _save(tmp_path, "ras.nii.gz", study.image[::-1, ::-1].copy(), ras_affine)
    out = {}
    for name, path in (("lps", lps), ("ras", ras)):
        label_file, result = task({"image": path, "device": "cpu", "min_lesion_mm3": 0})
        img = nib.load(label_file)
        assert img.shape == study.image.shape
        np.testing.assert_allclose(img.affine, nib.load(path).affine, atol=1e-3)
        out[name] = np.asarray(img.dataobj)
        assert result["label_names"] == {"lesion": 1}
        assert len(result["model"]["version"]) == 12
    assert 0 < out["lps"].mean() < 1, "a random network labels some voxels, not none or all"
    np.testing.assert_array_equal(out["ras"][::-1, ::-1], out["lps"])


def test_small_components_are_removed(tmp_path, study):
    task = _task(tmp_path)
    path = _save(tmp_path, "a.nii.gz", study.image, study.affine)
    _, r0 = task({"image": path, "device": "cpu", "min_lesion_mm3": 0})
    _, r1 = task({"image": path, "device": "cpu", "min_lesion_mm3": 1e9})
    assert r1["lesion_components"] == 0
    assert r0["lesion_components"] >= r1["lesion_components"]


def test_no_checkpoint_means_not_offered_and_not_run(tmp_path, study):
    task = _task(tmp_path, with_checkpoint=False)
    assert not task.is_valid()
    path = _save(tmp_path, "a.nii.gz", study.image, study.affine)
    with pytest.raises(ModelNotReadyError):
        task({"image": path, "device": "cpu"})
