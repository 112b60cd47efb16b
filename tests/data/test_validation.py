"""Volume checks: what is rejected, and with which status."""
from __future__ import annotations

import numpy as np
import nibabel as nib
import pytest

from lib.data.validation import check_ct_intensities, inspect_volume
from lib.errors import ImageTooLargeError, InvalidImageError


def _save(tmp_path, arr, name="v.nii.gz", spacing=(1.5, 1.5, 2.5)):
    p = tmp_path / name
    nib.save(nib.Nifti1Image(arr, np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])), str(p))
    return str(p)


def _ct(shape=(32, 32, 12)):
    rng = np.random.default_rng(0)
    a = np.full(shape, -1000, np.int16)
    a[4:-4, 4:-4, :] = 40 + rng.normal(0, 10, (shape[0] - 8, shape[1] - 8, shape[2])).astype(np.int16)
    return a


def test_a_ct_volume_passes(tmp_path):
    info = inspect_volume(_save(tmp_path, _ct()))
    assert info.shape == (32, 32, 12)
    assert info.spacing == pytest.approx((1.5, 1.5, 2.5))
    check_ct_intensities(_ct())


def test_garbage_file_is_unreadable(tmp_path):
    p = tmp_path / "x.nii.gz"
    p.write_bytes(b"garbage")
    with pytest.raises(InvalidImageError, match="could not be read"):
        inspect_volume(str(p))


def test_missing_file(tmp_path):
    with pytest.raises(InvalidImageError, match="does not exist"):
        inspect_volume(str(tmp_path / "none.nii.gz"))


def test_2d_and_4d_are_rejected(tmp_path):
    with pytest.raises(InvalidImageError, match="3D"):
        inspect_volume(_save(tmp_path, np.zeros((32, 32), np.int16), "a.nii.gz"))
    with pytest.raises(InvalidImageError, match="3D"):
        inspect_volume(_save(tmp_path, np.zeros((16, 16, 8, 3), np.int16), "b.nii.gz"))


def test_trailing_singleton_axis_is_a_3d_volume(tmp_path):
    info = inspect_volume(_save(tmp_path, _ct()[..., None], "c.nii.gz"))
    assert info.shape == (32, 32, 12)


def test_size_limit(tmp_path):
    with pytest.raises(ImageTooLargeError) as e:
        inspect_volume(_save(tmp_path, _ct()), max_voxels=1000)
    assert e.value.status_code == 413


@pytest.mark.parametrize(
    "arr",
    [
        np.random.default_rng(1).uniform(0, 1, (16, 16, 8)),  # normalised intensities
        np.random.default_rng(2).uniform(0, 1200, (16, 16, 8)),  # MR-like, no air
        np.zeros((16, 16, 8)),  # blank
    ],
    ids=["normalised", "mr-like", "blank"],
)
def test_non_ct_intensities_are_rejected(arr):
    with pytest.raises(InvalidImageError, match="do not look like CT"):
        check_ct_intensities(arr)


def test_nan_voxels_are_rejected():
    a = _ct().astype(np.float32)
    a[0, 0, 0] = np.nan
    with pytest.raises(InvalidImageError, match="NaN"):
        check_ct_intensities(a)
