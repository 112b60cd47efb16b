"""Grounded findings -> a DICOM TID 1500 Measurement Report (highdicom Comprehensive 3D SR).

One TID 1411 volumetric measurement group per grounded finding that has a segment in the SEG:

* tracking identifier: the finding's id and segment name (a reader links SR rows to SEG segments);
* a reference to its segment (``ReferencedSegment``: SEG instance + segment number + CT series);
* finding type Lesion; measurements volume (ml), long axis (mm, largest 3D diameter) and mean
  attenuation (HU), measured on the mask in the CT (:mod:`lib.schema.measure`), so every model's
  SR reports the same three numbers measured the same way;
* its report sentence as a TEXT item ``Comment`` (DCM 121106) (TID 1411 is extensible; the
  concept ``Finding`` is kept for the coded finding type), and the model's score as a
  qualitative TEXT item when the model gives one.

Findings the model could not ground are written as TEXT items ``Finding`` with the reason at the
report level, so the SR states what was *not* found as well.
"""
from __future__ import annotations

from typing import Optional, Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from lib.schema.measure import MaskMeasurements
from lib.schema.models import Finding, GroundingResult
from lib.writers.dicom_seg import MANUFACTURER, MODEL_CONTENT_LABEL, SegResult, _lo

SR_SERIES_NUMBER = 301
MILLILITER = hd.sr.CodedConcept("mL", "UCUM", "milliliter")
SENTENCE_CONCEPT = codes.DCM.Comment
SCORE_CONCEPT = hd.sr.CodedConcept("C25338", "NCIt", "Score")
NOT_GROUNDED_CONCEPT = codes.DCM.Finding


def _measurements(m: MaskMeasurements, algo: hd.sr.AlgorithmIdentification) -> list[hd.sr.Measurement]:
    out = [
        hd.sr.Measurement(name=codes.SCT.Volume, value=float(m.volume_ml), unit=MILLILITER, algorithm_id=algo),
        hd.sr.Measurement(name=codes.SCT.LongAxis, value=float(m.long_axis_mm), unit=codes.UCUM.Millimeter, algorithm_id=algo),
    ]
    if m.mean_hu is not None:
        out.append(
            hd.sr.Measurement(
                name=codes.DCM.AttenuationCoefficient, value=float(m.mean_hu), unit=codes.UCUM.HounsfieldUnit, derivation=codes.SCT.Mean, algorithm_id=algo
            )
        )
    return out


def _text(name, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)


def finding_group(finding: Finding, seg: SegResult, measured: MaskMeasurements, algo: hd.sr.AlgorithmIdentification) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """TID 1411 group of one grounded finding, referencing its segment."""
    number = seg.segment_numbers[finding.label]
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=_lo(f"{finding.id} {finding.label_name}")),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.dataset.SOPClassUID,
            sop_instance_uid=seg.dataset.SOPInstanceUID,
            segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(seg.source_images[0].SeriesInstanceUID),
        ),
        finding_type=codes.SCT.Lesion,
        algorithm_id=algo,
        measurements=_measurements(measured, algo),
    )
    if finding.sentence is not None:
        group[0].ContentSequence.append(_text(SENTENCE_CONCEPT, finding.sentence.text))
    if finding.score is not None:
        group[0].ContentSequence.append(_text(SCORE_CONCEPT, f"{finding.score_name or 'score'} {finding.score:.4f}"))
    return group


def write_sr(
    grounding: GroundingResult,
    seg: SegResult,
    measured: dict[int, MaskMeasurements],
    series_number: int = SR_SERIES_NUMBER,
    procedure: Optional[hd.sr.CodedConcept] = None,
) -> hd.sr.Comprehensive3DSR:
    """TID 1500 report of ``grounding``'s grounded findings (those with a segment in ``seg``).

    ``measured``: label value -> measurements on its mask (:func:`lib.schema.measure.measure_labels`).
    """
    algo = hd.sr.AlgorithmIdentification(name=_lo(grounding.model.name or "radground"), version=_lo(grounding.model.version))
    groups, missing = [], []
    for f in grounding.findings:
        if f.grounded and f.label in seg.segment_numbers and f.label in measured:
            groups.append(finding_group(f, seg, measured[f.label], algo))
        elif not f.grounded:
            missing.append(f)
    if not groups:
        raise ValueError("no grounded finding with a segment: nothing to report")
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["radground", grounding.model.name or "", grounding.model.version]),
            name=_lo(grounding.model.name or "radground"),
            model_name=_lo(grounding.model.version),
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=procedure or codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    for f in missing:
        text = f"{f.sentence.text if f.sentence else f.id} (not grounded: {f.reason})"
        report[0].ContentSequence.append(_text(NOT_GROUNDED_CONCEPT, text))
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(seg.source_images) + [seg.dataset],
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=_lo(f"{grounding.model.name or 'radground'} grounded findings"),
    )
    sr.SpecificCharacterSet = "ISO_IR 192"
    return sr


def read_findings(sr: Dataset) -> list[dict]:
    """Grounded findings of an SR written by :func:`write_sr` read back: tracking id, segment
    number, referenced SEG instance, sentence, and measurements by concept meaning."""
    doc = hd.sr.Comprehensive3DSR.from_dataset(sr)
    out = []
    for group in doc.content.get_volumetric_roi_measurement_groups():
        ref = group.referenced_segment
        texts = {}
        for item in group[0].ContentSequence:
            if item.ValueType == "TEXT":
                texts[item.ConceptNameCodeSequence[0].CodeValue] = str(item.TextValue)
        out.append(
            {
                "tracking_id": group.tracking_identifier,
                "segment_number": int(ref[0].ReferencedSOPSequence[0].ReferencedSegmentNumber),
                "seg_sop_instance_uid": str(ref[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID),
                "sentence": texts.get(SENTENCE_CONCEPT.value),
                "finding_type": group.finding_type.meaning if group.finding_type else None,
                "measurements": {m.name.meaning: (float(m.value), m.unit.value) for m in group.get_measurements()},
            }
        )
    return out


def has_reportable_findings(grounding: GroundingResult, seg: SegResult) -> bool:
    """True when some grounded finding has a segment in ``seg`` (what a TID 1500 report needs)."""
    return any(f.grounded and f.label in seg.segment_numbers for f in grounding.findings)


def seg_and_sr(
    grounding: GroundingResult, label_file: str, ct_file: Optional[str], source_images: Sequence[Dataset], content_label: str = MODEL_CONTENT_LABEL
) -> tuple[SegResult, Optional[hd.sr.Comprehensive3DSR]]:
    """A task's answer -> (DICOM SEG, TID 1500 SR) over the CT instances it was computed on.

    ``label_file``: the answer's label map; ``ct_file``: the image the task read (same grid; mean HU
    is left out without it). Measurements are taken on the input grid. The SR is None when no
    grounded finding has a segment (a segmentation-only answer: the SEG says it all).
    """
    import SimpleITK as sitk

    from lib.schema.geometry import affine_lps_of
    from lib.schema.measure import measure_labels
    from lib.writers.dicom_seg import write_seg

    label_img = sitk.ReadImage(label_file)
    seg = write_seg(grounding, label_img, source_images, content_label=content_label)
    if not has_reportable_findings(grounding, seg):
        return seg, None
    label = np.transpose(sitk.GetArrayFromImage(label_img), (2, 1, 0))  # ITK index order (i, j, k)
    ct = None
    if ct_file is not None:
        ct_img = sitk.ReadImage(ct_file)
        if ct_img.GetSize() != label_img.GetSize():
            raise ValueError("the label map is not on the CT's grid")
        ct = np.transpose(sitk.GetArrayFromImage(ct_img), (2, 1, 0)).astype(np.float64)
    measured = measure_labels(label, affine_lps_of(label_img), ct)
    return seg, write_sr(grounding, seg, measured)
