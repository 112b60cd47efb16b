"""The label writer: input grid, Slicer's format requests, no partial files."""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from lib.writers.label_writer import LabelWriter, result_extension, write_label


def test_label_is_written_on_the_given_affine():
    label = np.zeros((10, 12, 5), np.uint8)
    label[2:4, 3:6, 1:3] = 1
    affine = np.array([[-1.5, 0, 0, 10.0], [0, -1.5, 0, 20.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])
    path = write_label(label, affine, ".nii.gz")
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(img.dataobj), label)
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(os.path.basename(path) + ".partial")]


def test_slicer_asks_for_nrrd():
    data = {"result_extension": ".nrrd", "source_path": "/x/a.nii.gz"}
    assert result_extension(data) == ".nrrd"
    assert result_extension({"source_path": "/x/a.nii.gz"}) == ".nii.gz"
    assert result_extension({"result_extension": ".exe"}) == ".nii.gz"  # only label formats


def test_writer_checks_the_shape_and_uses_uint16_when_needed():
    affine = np.eye(4)
    pred = np.zeros((4, 4, 3), np.int32)
    pred[0, 0, 0] = 300
    path, result = LabelWriter()({"pred": pred, "source_affine": affine, "source_shape": (4, 4, 3), "result": {"a": 1}})
    assert result == {"a": 1}
    img = sitk.ReadImage(path)
    assert sitk.GetArrayFromImage(img).max() == 300
    try:
        LabelWriter()({"pred": pred, "source_affine": affine, "source_shape": (5, 4, 3)})
    except RuntimeError as e:
        assert "does not match" in str(e)
    else:
        raise AssertionError("a label of the wrong shape must not be written")
