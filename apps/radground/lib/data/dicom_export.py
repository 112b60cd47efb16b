"""A synthetic study (NIfTI CT + report text) -> a DICOM CT series and a DICOM SR holding the report.

PACS, OHIF and MONAI Label's DICOMweb datastore speak DICOM, while the synthetic engine writes
NIfTI. This module makes the DICOM study: one CT Image Storage instance per slice (pydicom:
no library writes plain CT image objects from a volume; highdicom covers derived objects only),
and the report as an Enhanced SR (highdicom) whose one TEXT item is the report verbatim, so the
character spans of every grounding answer still point into it.

Geometry comes from SimpleITK, whose physical frame is DICOM's (LPS): slice ``k`` of the volume is
instance ``k + 1``, at ``ImagePositionPatient`` = the world position of voxel (0, 0, k), with the
first two direction columns as ``ImageOrientationPatient``. UIDs are derived from the study id
(``generate_uid(entropy_srcs=...)``), so exporting the same study again gives the same instances
and an upload to a PACS is idempotent.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

MANUFACTURER = "radground"
REPORT_SERIES_NUMBER = 900
CT_SERIES_NUMBER = 1
#: Diagnostic imaging report (LOINC), the usual title of a report document
REPORT_TITLE = codes.LN.DiagnosticImagingReport


@dataclass
class DicomStudy:
    """What :func:`export_study` wrote."""

    study_uid: str
    ct_series_uid: str
    ct_files: list[str]
    report_file: Optional[str] = None
    frame_of_reference_uid: str = ""
    patient_id: str = ""
    extra: dict = field(default_factory=dict)


def _uid(*parts: str) -> str:
    return generate_uid(entropy_srcs=["radground", *parts])


def ct_series(image: sitk.Image, patient_id: str, study_uid: Optional[str] = None, series_description: str = "synthetic CT") -> list[Dataset]:
    """One CT Image Storage dataset per slice of ``image`` (int16 HU, slope 1, intercept 0)."""
    if image.GetDimension() != 3:
        raise ValueError("expected a 3D CT volume")
    study_uid = study_uid or _uid(patient_id, "study")
    series_uid = _uid(patient_id, "ct-series")
    frame_uid = _uid(patient_id, "frame-of-reference")
    arr = sitk.GetArrayFromImage(image)  # (k, j, i): slices, rows, columns
    if arr.min() < np.iinfo(np.int16).min or arr.max() > np.iinfo(np.int16).max:
        raise ValueError("CT values do not fit int16 HU")
    arr = arr.astype(np.int16)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    spacing = image.GetSpacing()
    iop = [round(float(v), 6) for v in list(direction[:, 0]) + list(direction[:, 1])]
    now = _dt.datetime(2026, 1, 1, 8, 0, 0)
    datasets = []
    for k in range(arr.shape[0]):
        sop_uid = _uid(patient_id, "ct", str(k))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = f"Synthetic^{patient_id}", patient_id, "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = patient_id[-16:], "", ""
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.StudyDescription, ds.SeriesDescription = "radground synthetic study", series_description
        ds.SeriesNumber, ds.InstanceNumber = CT_SERIES_NUMBER, k + 1
        ds.Manufacturer, ds.PositionReferenceIndicator = MANUFACTURER, ""
        ds.ImagePositionPatient = [round(float(v), 4) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = [round(float(spacing[1]), 6), round(float(spacing[0]), 6)]  # [between rows, between columns]
        ds.SliceThickness = round(float(spacing[2]), 6)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = int(arr.shape[1]), int(arr.shape[2])
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.KVP = 120
        ds.PixelData = np.ascontiguousarray(arr[k]).tobytes()
        datasets.append(ds)
    return datasets


def report_sr(report_text: str, ct_datasets: Sequence[Dataset], patient_id: str) -> hd.sr.EnhancedSR:
    """The report as an Enhanced SR in the CT's study: title 'Diagnostic Imaging Report', one TEXT
    item 'Findings' holding the report verbatim (spans of grounding answers refer to this text)."""
    if not report_text or not report_text.strip():
        raise ValueError("empty report")
    container = hd.sr.ContainerContentItem(name=REPORT_TITLE, template_id=None)
    container.ContentSequence = [
        hd.sr.TextContentItem(name=codes.DCM.Findings, value=report_text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    ]
    sr = hd.sr.EnhancedSR(
        evidence=list(ct_datasets),
        content=container,
        series_instance_uid=_uid(patient_id, "report-series"),
        series_number=REPORT_SERIES_NUMBER,
        sop_instance_uid=_uid(patient_id, "report"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        series_description="Radiology report",
    )
    sr.SpecificCharacterSet = "ISO_IR 192"
    return sr


def report_text_of(sr: Dataset) -> Optional[str]:
    """The report text of an SR written by :func:`report_sr` (None if it holds no such item)."""
    for item in getattr(sr, "ContentSequence", []):
        if getattr(item, "ValueType", "") == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == codes.DCM.Findings.value:
            return str(item.TextValue)
    return None


def export_study(image_path: str, out_dir: str, patient_id: str, report_text: Optional[str] = None) -> DicomStudy:
    """Write ``image_path`` (NIfTI/NRRD CT) as a DICOM series under ``out_dir/ct`` and, with a report,
    ``out_dir/report.dcm``; returns the UIDs and files."""
    image = sitk.ReadImage(image_path)
    datasets = ct_series(image, patient_id)
    os.makedirs(os.path.join(out_dir, "ct"), exist_ok=True)
    files = []
    for ds in datasets:
        path = os.path.join(out_dir, "ct", f"{ds.InstanceNumber:04d}.dcm")
        ds.save_as(path, write_like_original=False)
        files.append(path)
    study = DicomStudy(
        study_uid=datasets[0].StudyInstanceUID,
        ct_series_uid=datasets[0].SeriesInstanceUID,
        ct_files=files,
        frame_of_reference_uid=datasets[0].FrameOfReferenceUID,
        patient_id=patient_id,
    )
    if report_text is not None:
        study.report_file = os.path.join(out_dir, "report.dcm")
        report_sr(report_text, datasets, patient_id).save_as(study.report_file, write_like_original=False)
    return study
