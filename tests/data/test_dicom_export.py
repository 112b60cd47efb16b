"""NIfTI study -> DICOM CT series + report SR: the series reads back as the same volume in the same
place (any stored orientation), the report text round-trips verbatim, and UIDs are stable."""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from lib.data.dicom_export import ct_series, export_study, report_text_of
from lib.data.studies import generate_dataset, image_path, read_report

STUDY = "synth_20002"


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("export") / "studies")
    generate_dataset(out, [20002], preset="tiny", body="abdomen")
    return out


def _read_series(folder: str) -> sitk.Image:
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(folder))
    return r.Execute()


def _same_volume_in_space(a: sitk.Image, b: sitk.Image) -> None:
    """Equal HU at equal world positions, whatever the array order of either image."""
    resampled = sitk.Resample(b, a, sitk.Transform(), sitk.sitkNearestNeighbor, -2000)
    assert np.array_equal(sitk.GetArrayFromImage(resampled), sitk.GetArrayFromImage(a))


def test_series_reads_back_as_the_volume(studies, tmp_path):
    src = image_path(studies, STUDY)
    st = export_study(src, str(tmp_path), STUDY)
    back, orig = _read_series(os.path.join(str(tmp_path), "ct")), sitk.ReadImage(src)
    assert back.GetSize() == orig.GetSize() and np.allclose(back.GetSpacing(), orig.GetSpacing())
    assert np.allclose(back.GetOrigin(), orig.GetOrigin(), atol=1e-3) and np.allclose(back.GetDirection(), orig.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(orig))
    ds = pydicom.dcmread(st.ct_files[0])
    assert ds.Modality == "CT" and ds.SOPClassUID == pydicom.uid.CTImageStorage and ds.StudyInstanceUID == st.study_uid
    assert st.report_file is None


def test_a_volume_stored_in_another_orientation_lands_in_the_same_place(studies, tmp_path):
    img = nib.load(image_path(studies, STUDY))
    data = np.asarray(img.dataobj)
    shape = np.asarray(data.shape)
    shift = np.eye(4)
    shift[:2, 3] = shape[:2] - 1
    flipped = str(tmp_path / "ras.nii.gz")
    nib.save(nib.Nifti1Image(data[::-1, ::-1].copy(), img.affine @ shift @ np.diag([-1.0, -1.0, 1.0, 1.0])), flipped)
    export_study(flipped, str(tmp_path / "dcm"), STUDY)
    back = _read_series(str(tmp_path / "dcm" / "ct"))
    assert not np.allclose(back.GetDirection(), np.eye(3).ravel())  # really another orientation
    _same_volume_in_space(sitk.ReadImage(image_path(studies, STUDY)), back)


def test_report_sr_holds_the_report_verbatim_in_the_ct_study(studies, tmp_path):
    report = read_report(studies, STUDY) + "\nNote: 5 µm — unicode survives."
    st = export_study(image_path(studies, STUDY), str(tmp_path), STUDY, report)
    sr = pydicom.dcmread(st.report_file)
    assert report_text_of(sr) == report
    assert sr.Modality == "SR" and sr.StudyInstanceUID == st.study_uid and sr.SeriesInstanceUID != st.ct_series_uid
    refs = {
        i.ReferencedSOPInstanceUID
        for key in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence")
        for s in getattr(sr, key, [])
        for ser in s.ReferencedSeriesSequence
        for i in ser.ReferencedSOPSequence
    }
    assert refs == {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in st.ct_files}


def test_uids_are_stable_per_study_and_distinct_across_studies(studies):
    img = sitk.ReadImage(image_path(studies, STUDY))
    a, b, c = ct_series(img, STUDY), ct_series(img, STUDY), ct_series(img, "other")
    assert [d.SOPInstanceUID for d in a] == [d.SOPInstanceUID for d in b]
    assert len({d.SOPInstanceUID for d in a}) == len(a)
    assert not {d.SOPInstanceUID for d in a} & {d.SOPInstanceUID for d in c} and a[0].StudyInstanceUID != c[0].StudyInstanceUID


def test_bad_inputs_are_refused(studies, tmp_path):
    with pytest.raises(ValueError, match="empty report"):
        export_study(image_path(studies, STUDY), str(tmp_path), STUDY, "  ")
    with pytest.raises(ValueError, match="3D"):
        ct_series(sitk.Image(8, 8, sitk.sitkInt16), "x")
    with pytest.raises(ValueError, match="int16"):
        ct_series(sitk.Image(4, 4, 4, sitk.sitkFloat32) + 1e6, "x")
