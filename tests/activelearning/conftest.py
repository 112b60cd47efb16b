"""A MONAI Label local datastore of tiny placeholder volumes (no model needed)."""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
from monailabel.datastore.local import LocalDatastore


def make_datastore(root: str, ids, labelled=()) -> LocalDatastore:
    os.makedirs(os.path.join(root, "labels", "final"), exist_ok=True)
    for i in ids:
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), os.path.join(root, f"{i}.nii.gz"))
    for i in labelled:
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), os.path.join(root, "labels", "final", f"{i}.nii.gz"))
    return LocalDatastore(root, extensions=("*.nii.gz",), auto_reload=False)


@pytest.fixture
def datastore(tmp_path):
    return make_datastore(str(tmp_path / "studies"), ["s1", "s2", "s3", "s4"], labelled=["s4"])
