"""MONAI Label's DICOMweb datastore, with DICOM SEG written by highdicom and model answers kept apart.

MONAI Label 0.8.5's ``DICOMWebDatastore`` turns a saved ``final`` label into a SEG with dcmqi's
``itkimage2segimage``, which cannot be installed offline (the app does not download it, see
``RadGroundApp._download_dcmqi_tools``). Here:

* ``save_label`` (``PUT /datastore/label``, Slicer's and OHIF's "save") writes the SEG with
  :func:`lib.writers.dicom_seg.write_seg` over the cached CT instances, segment labels from the
  request's ``label_info`` (Slicer: ``[{"name", "idx"}]``), ``ContentLabel`` ``FINAL``, stores it
  with STOW-RS, then keeps the label in the local cache as MONAI Label does;
* a model's answer stored with ``store_dicom`` (:mod:`lib.serving.dicom_store`) is a SEG with
  ``ContentLabel`` ``GROUNDING``. MONAI Label counts *every* SEG in the PACS as a finished label of
  the series it references, so an unreviewed model answer would become training data; the labeled
  list and the training download here skip ``GROUNDING`` SEGs.

MONAI Label builds the DICOMweb client and datastore from its own settings (credentials, QIDO/WADO/
STOW prefixes, Google Cloud sessions); :func:`radground_datastore` re-classes the object it built
(this subclass adds methods, no state) rather than repeating that construction.
"""
from __future__ import annotations

import logging
import os
import pathlib
import shutil
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pydicom
import requests
import SimpleITK as sitk
from monailabel.datastore.dicom import DICOMWebDatastore
from monailabel.datastore.local import LocalDatastore
from monailabel.datastore.utils.convert import binary_to_image
from monailabel.interfaces.datastore import DefaultLabelTag
from pydicom.dataset import Dataset

from lib.schema.models import GroundingResult, ModelInfo, Segment, TaskType
from lib.serving.pacs import SERIES_UID, STUDY_UID, PacsError, dicom_json_value
from lib.writers.dicom_seg import FINAL_CONTENT_LABEL, MODEL_CONTENT_LABEL, write_seg

logger = logging.getLogger(__name__)

#: ContentLabel / ReferencedSeriesSequence in DICOM JSON metadata
CONTENT_LABEL, REFERENCED_SERIES = "00700080", "00081115"


def radground_datastore(datastore: Any) -> Any:
    """``datastore`` as a :class:`RadgroundDICOMwebDatastore` when it is MONAI Label's DICOMweb one."""
    if isinstance(datastore, DICOMWebDatastore) and not isinstance(datastore, RadgroundDICOMwebDatastore):
        datastore.__class__ = RadgroundDICOMwebDatastore
    return datastore


def segments_from_label_info(label_info: Any, values: Sequence[int]) -> list[Segment]:
    """Named segments for the label values present: Slicer's ``[{"name", "idx"}]`` or a
    ``{name: value}`` mapping; a value nobody named is "segment <value>"."""
    names: dict[int, str] = {}
    if isinstance(label_info, dict):
        names = {int(v): str(k) for k, v in label_info.items() if str(v).lstrip("-").isdigit()}
    elif isinstance(label_info, list):
        names = {int(e["idx"]): str(e["name"]) for e in label_info if isinstance(e, dict) and "idx" in e and e.get("name")}
    out, used = [], set()
    for v in sorted(int(x) for x in values if int(x) > 0):
        name = names.get(v) or f"segment {v}"
        name = name if name not in used else f"{name} ({v})"
        used.add(name)
        out.append(Segment(label=v, name=name))
    return out


class RadgroundDICOMwebDatastore(DICOMWebDatastore):
    # ------------------------------------------------------------------ the cached CT instances
    def series_dir(self, image_id: str) -> str:
        """Where MONAI Label keeps the downloaded instances of series ``image_id``."""
        return os.path.realpath(os.path.join(self._datastore.image_path(), image_id))

    def source_instances(self, image_id: str) -> list[Dataset]:
        """The CT instances of ``image_id`` (downloaded on first use, as ``get_image_uri`` does)."""
        self.get_image_uri(image_id)
        folder = self.series_dir(image_id)
        return [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]

    def store(self, datasets: Sequence[Dataset]) -> None:
        """STOW-RS ``datasets`` in one request; a PACS failure is a clear 502, not a stack trace."""
        try:
            self._client.store_instances(list(datasets))
        except requests.RequestException as e:
            raise PacsError(f"the PACS refused or did not answer the DICOM store ({type(e).__name__})") from e

    # ------------------------------------------------------------------ label save (Slicer / OHIF)
    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any], label_id: str = "") -> str:
        converted = ""
        if "".join(pathlib.Path(label_filename).suffixes) == ".bin":  # a raw voxel upload, as MONAI Label accepts
            converted = label_filename = binary_to_image(self.get_image_uri(image_id), label_filename)
        try:
            info = dict(label_info or {})
            if label_tag == DefaultLabelTag.FINAL:  # only finished labels go to the PACS, as in MONAI Label
                info.update(self._store_final_seg(image_id, label_filename, info))
            return LocalDatastore.save_label(self, image_id, label_filename, label_tag, info)
        finally:
            if converted:
                os.unlink(converted)

    def _store_final_seg(self, image_id: str, label_filename: str, info: Dict[str, Any]) -> Dict[str, Any]:
        """The label as a ``FINAL`` SEG in the PACS; the fields MONAI Label keeps in the label's info."""
        label = sitk.ReadImage(label_filename)
        values = [int(v) for v in np.unique(sitk.GetArrayViewFromImage(label)) if v > 0]
        if not values:  # "no lesion" is a finished label too, but a SEG cannot hold zero segments
            logger.warning(f"final label of {image_id} is empty: kept in the cache, no SEG stored")
            return {}
        grounding = GroundingResult(
            model=ModelInfo(name=str(info.get("model") or "radground"), version="saved label", task_type=TaskType.LESION_GROUNDING),
            segments=segments_from_label_info(info.get("label_info") or info.get("label_names"), values),
        )
        seg = write_seg(grounding, label, self.source_instances(image_id), series_description="final label", content_label=FINAL_CONTENT_LABEL)
        self.store([seg.dataset])
        image_info = self.get_image_info(image_id)
        return {
            "SeriesInstanceUID": str(seg.dataset.SeriesInstanceUID),
            "Modality": image_info.get("Modality"),
            "PatientID": image_info.get("PatientID"),
            "StudyInstanceUID": image_info.get("StudyInstanceUID"),
        }

    # ------------------------------------------------------------------ finished labels = person-saved SEGs
    def final_segs(self) -> List[Dict[str, str]]:
        """``{"image", "label"}`` for every SEG in the PACS that references a listed CT series and is
        not a model's answer (``ContentLabel`` ``GROUNDING``)."""
        images, out = set(self.list_images()), []
        for seg in self._client.search_for_series(search_filters={"Modality": "SEG"}):
            study, series = dicom_json_value(seg, STUDY_UID), dicom_json_value(seg, SERIES_UID)
            meta = self._client.retrieve_series_metadata(study, series)
            first = meta[0] if meta else {}
            if dicom_json_value(first, CONTENT_LABEL) == MODEL_CONTENT_LABEL:
                continue
            refs = (first.get(REFERENCED_SERIES) or {}).get("Value") or []
            image = dicom_json_value(refs[0], SERIES_UID) if refs else None
            if image in images:
                out.append({"image": image, "label": series})
            else:
                logger.warning(f"SEG {series} ignored: it references no listed image series")
        return out

    def get_labeled_images(self, label_tag: Optional[str] = None, labels: Optional[List[str]] = None) -> List[str]:
        return sorted({e["image"] for e in self.final_segs()})

    def _download_labeled_data(self):
        pairs = self.final_segs()
        for stale in set(LocalDatastore.get_labeled_images(self)) - {p["image"] for p in pairs}:
            logger.info(f"label of {stale} is no longer in the PACS; removed from the cache")
            uri = LocalDatastore.get_label_uri(self, stale, DefaultLabelTag.FINAL)
            if uri and os.path.exists(uri):
                shutil.rmtree(os.path.join(os.path.dirname(uri), stale), ignore_errors=True)
                os.unlink(uri)
        for p in pairs:
            self.get_image_uri(image_id=p["image"])
            self.get_label_uri(label_id=p["label"], label_tag=DefaultLabelTag.FINAL, image_id=p["image"])
