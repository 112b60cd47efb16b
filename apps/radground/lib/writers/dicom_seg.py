"""A task's label map -> a DICOM Segmentation (highdicom) whose segment labels are the segment names.

OHIF shows a grounding answer only through DICOM objects (its MONAI Label plugin asks for
``output=image``), and MONAI Label's own SEG conversion needs dcmqi, which cannot be installed
offline; highdicom writes the SEG from the label map and the CT instances instead.

* The label map (on the input grid, any orientation) is resampled nearest-neighbour onto the CT
  series' own grid, built from the instances' ``ImagePositionPatient`` / ``ImageOrientationPatient``
  (SimpleITK, both in LPS), so frames line up with the source slices whatever the file order.
* Segment numbers must run 1..N in a SEG; label values need not (an ungrounded lesion leaves a gap),
  so values are renumbered in order and :attr:`SegResult.segment_numbers` keeps label -> segment.
* ``SegmentLabel`` is the segment name (VR LO: cut to 64 characters, with the full name in
  ``SegmentDescription``); the character set is UTF-8, since names carry an em dash.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from lib.schema.models import GroundingResult, TaskType

MANUFACTURER = "radground"
SEG_SERIES_NUMBER = 300
MAX_LO = 64
#: ``ContentLabel`` of a SEG: a model's answer vs a label a person saved (the DICOMweb datastore
#: trains only on the latter, :mod:`lib.serving.dicomweb`)
MODEL_CONTENT_LABEL = "GROUNDING"
FINAL_CONTENT_LABEL = "FINAL"

#: category / type of a segment by answer kind: lesions vs anatomy
ANATOMY_CATEGORY = hd.sr.CodedConcept("123037004", "SCT", "Anatomical Structure")
LESION_CATEGORY = codes.SCT.MorphologicallyAbnormalStructure


@dataclass
class SegResult:
    dataset: hd.seg.Segmentation
    segment_numbers: dict[int, int]  # label value -> segment number
    source_images: list[Dataset]  # the CT instances, in frame order


def sort_series(datasets: Sequence[Dataset]) -> list[Dataset]:
    """CT instances ordered along the slice normal (the order of the series' volume)."""
    ds = list(datasets)
    if not ds:
        raise ValueError("no source images")
    iop = np.asarray(ds[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    return sorted(ds, key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, float))))


def series_grid(datasets: Sequence[Dataset]) -> sitk.Image:
    """An empty SimpleITK image on the grid of sorted CT instances (x = columns, y = rows, z = slices)."""
    first = datasets[0]
    iop = np.asarray(first.ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    positions = np.asarray([d.ImagePositionPatient for d in datasets], float)
    if len(datasets) > 1:
        steps = np.diff(positions @ normal)
        if np.any(steps <= 0) or not np.allclose(steps, steps[0], rtol=1e-3, atol=1e-3):
            raise ValueError("the CT instances are not evenly spaced slices of one volume")
        dz = float(steps[0])
    else:
        dz = float(getattr(first, "SliceThickness", 1.0) or 1.0)
    ref = sitk.Image(int(first.Columns), int(first.Rows), len(datasets), sitk.sitkUInt16)
    ref.SetSpacing((float(first.PixelSpacing[1]), float(first.PixelSpacing[0]), dz))
    ref.SetOrigin(tuple(float(v) for v in positions[0]))
    ref.SetDirection(tuple(np.stack([iop[:3], iop[3:], normal], axis=1).ravel().tolist()))
    return ref


def label_on_series(label: Union[str, sitk.Image], datasets: Sequence[Dataset]) -> np.ndarray:
    """The label map as (frames, rows, columns) on the sorted CT instances' grid."""
    img = sitk.ReadImage(label) if isinstance(label, str) else label
    out = sitk.Resample(sitk.Cast(img, sitk.sitkUInt16), series_grid(datasets), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(out)


def _lo(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_LO else text[: MAX_LO - 1] + "…"


def segment_color(number: int) -> hd.color.CIELabColor:
    """A distinct display colour per segment number (hues a golden angle apart at L* 65), so viewers
    (OHIF, Slicer) tell neighbouring lesions apart instead of falling back to one default colour."""
    hue = np.deg2rad(137.508 * (number - 1))
    return hd.color.CIELabColor(65.0, 60.0 * float(np.cos(hue)), 60.0 * float(np.sin(hue)))


def segment_descriptions(grounding: GroundingResult, labels: Sequence[int]) -> list[hd.seg.SegmentDescription]:
    """One description per label value present, numbered 1..N, named from the schema's segments."""
    names = {s.label: s.name for s in grounding.segments}
    anatomy = grounding.model.task_type in (TaskType.SEGMENTATION, TaskType.REGION_REPORT) and not grounding.findings
    algo = hd.AlgorithmIdentificationSequence(
        name=_lo(grounding.model.name or "radground"), family=codes.DCM.ArtificialIntelligence, version=_lo(grounding.model.version)
    )
    out = []
    for number, value in enumerate(labels, start=1):
        name = names.get(value)
        if name is None:
            raise ValueError(f"label value {value} has no segment name in the result")
        if anatomy:
            category, prop = ANATOMY_CATEGORY, hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
        else:
            category, prop = LESION_CATEGORY, codes.SCT.Lesion
        desc = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=_lo(name),
            segmented_property_category=category,
            segmented_property_type=prop,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algo,
            tracking_uid=generate_uid(),
            tracking_id=_lo(name),
        )
        desc.SegmentDescription = name[:1024]
        desc.RecommendedDisplayCIELabValue = list(segment_color(number).value)
        out.append(desc)
    return out


def write_seg(
    grounding: GroundingResult,
    label: Union[str, sitk.Image],
    source_images: Sequence[Dataset],
    series_number: int = SEG_SERIES_NUMBER,
    series_description: Optional[str] = None,
    content_label: str = MODEL_CONTENT_LABEL,
) -> SegResult:
    """DICOM SEG of ``label`` (the task's label file) over ``source_images`` (the CT instances)."""
    sources = sort_series(source_images)
    pixels = label_on_series(label, sources)
    values = [int(v) for v in np.unique(pixels) if v != 0]
    if not values:
        raise ValueError("the label map has no segment on this series: nothing to store as a SEG")
    numbers = {v: i for i, v in enumerate(values, start=1)}
    lut = np.zeros(int(pixels.max()) + 1, dtype=np.uint16)
    for v, n in numbers.items():
        lut[v] = n
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=lut[pixels],
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(grounding, values),
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=_lo(grounding.model.name or "radground"),
        software_versions=_lo(grounding.model.version),
        device_serial_number="0",
        content_label=content_label,
        content_description=_lo(f"{grounding.model.name} {grounding.model.task_type.value}"),
        omit_empty_frames=True,
    )
    seg.SpecificCharacterSet = "ISO_IR 192"
    seg.SeriesDescription = _lo(series_description or f"{grounding.model.name or 'radground'} segments")
    return SegResult(dataset=seg, segment_numbers=numbers, source_images=sources)


def segment_names(seg: Dataset) -> dict[int, str]:
    """Segment number -> full name (``SegmentDescription`` if set, else ``SegmentLabel``) of a SEG read back."""
    return {int(s.SegmentNumber): str(getattr(s, "SegmentDescription", "") or s.SegmentLabel) for s in seg.SegmentSequence}
