"""``params.store_dicom``: the server stores an infer answer in the PACS as DICOM SEG + TID 1500 SR.

OHIF's MONAI Label plugin only ever sees a label image, and a PACS keeps DICOM objects, not JSON;
so on a DICOMweb datastore a request with ``"store_dicom": true`` has the server write its answer as

* a DICOM SEG over the CT series (segment labels = the answer's segment names, ``ContentLabel``
  ``GROUNDING``: a model's answer, never counted as a finished label, :mod:`lib.serving.dicomweb`);
* a TID 1500 SR in which each grounded finding carries its report sentence, volume, long axis,
  mean HU and a reference to its segment (none when the answer has no grounded finding);

both built before anything is sent and stored with one STOW-RS request, and says what it stored
in the answer's ``params["dicom"]``. The request is checked before any model runs: ``store_dicom``
on a local datastore, or on an uploaded image (no series to reference), is a 422.
"""
from __future__ import annotations

import logging
from typing import Any

from lib.errors import InvalidParamsError
from lib.schema.models import GroundingResult
from lib.writers.dicom_seg import segment_names
from lib.writers.dicom_sr import seg_and_sr

logger = logging.getLogger(__name__)

STORE_PARAM = "store_dicom"
RESULT_KEY = "dicom"


def wants_store(request: dict) -> bool:
    """True for ``store_dicom`` true / "true" / 1 (JSON params and Slicer's checkbox both arrive)."""
    v = request.get(STORE_PARAM, False)
    return v is True or str(v).strip().lower() in ("true", "1", "yes")


def check_store_request(request: dict, datastore: Any, image_is_upload: bool) -> None:
    """Refuse ``store_dicom`` where there is no PACS series to store against (before the model runs)."""
    if not wants_store(request):
        return
    if not hasattr(datastore, "source_instances"):
        raise InvalidParamsError("store_dicom needs a DICOMweb datastore (start the server with --studies http://HOST:PORT/dicom-web)")
    if image_is_upload:
        raise InvalidParamsError("store_dicom needs an image of the datastore (a series in the PACS), not an uploaded file")


def store_answer(datastore: Any, image_id: str, answer: dict) -> dict:
    """Write ``answer`` (MONAI Label's ``{"file", "params"}`` of one infer) to the PACS; what was stored."""
    params = answer.get("params") or {}
    label_file = answer.get("file")
    if not params.get("grounding") or not label_file:
        return {"stored": False, "reason": "the answer has no label map with a result schema to store"}
    grounding = GroundingResult.model_validate(params["grounding"])
    if not grounding.segments:
        return {"stored": False, "reason": "the answer has no segment (nothing was grounded)"}
    sources = datastore.source_instances(image_id)
    try:
        seg, sr = seg_and_sr(grounding, label_file, datastore.get_image_uri(image_id), sources)
    except ValueError as e:  # e.g. every segment vanished on the series grid
        return {"stored": False, "reason": str(e)}
    datastore.store([seg.dataset] + ([sr] if sr is not None else []))
    out = {
        "stored": True,
        "study_uid": str(seg.dataset.StudyInstanceUID),
        "seg": {
            "series_uid": str(seg.dataset.SeriesInstanceUID),
            "sop_instance_uid": str(seg.dataset.SOPInstanceUID),
            "segments": {str(n): name for n, name in segment_names(seg.dataset).items()},
        },
        "sr": None,
    }
    if sr is not None:
        out["sr"] = {"series_uid": str(sr.SeriesInstanceUID), "sop_instance_uid": str(sr.SOPInstanceUID)}
    logger.info(f"stored in the PACS for {image_id}: SEG {out['seg']['series_uid']}, SR {out['sr'] and out['sr']['series_uid']}")
    return out
