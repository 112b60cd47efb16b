"""The report of a study that lives in a PACS (MONAI Label's DICOMweb datastore).

On a DICOMweb datastore an image id is a CT series UID; the report is a DICOM Structured Report in
the same study (how a reporting system files it, and how :mod:`lib.data.dicom_export` writes it).
Lookup: QIDO-RS for the series' study, QIDO-RS for the study's SR series, WADO-RS for their
instances; the newest report-like SR wins.

Which SR is a report: any SR whose document holds TEXT items, except the TID 1500 measurement
reports (title ``Imaging Measurement Report``) that this server itself stores beside the SEG, whose
text items are copies of report sentences and must never be read back as the report. The text is
the TEXT items in document order, joined by blank lines; a report written by
:func:`lib.data.dicom_export.report_sr` has one item, so its text (and every character span of a
grounding answer into it) is the original verbatim.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

import requests
from pydicom.dataset import Dataset

from lib.errors import RadgroundError

logger = logging.getLogger(__name__)

#: DCM 126000 "Imaging Measurement Report": the title of TID 1500 documents (our own SR output)
MEASUREMENT_REPORT_CODE = "126000"


#: DICOM JSON tags of the QIDO-RS answers read here
STUDY_UID, SERIES_UID, SERIES_DATE, SERIES_TIME = "0020000D", "0020000E", "00080021", "00080031"


def dicom_json_value(meta: dict, tag: str) -> Optional[str]:
    """A DICOM JSON attribute's first value (QIDO answers are DICOM JSON, keyed by tag)."""
    values = (meta.get(tag) or {}).get("Value") or []
    return str(values[0]) if values else None


class PacsError(RadgroundError):
    """The PACS did not answer (down, refused, an HTTP error): the request cannot be served now."""

    status_code = 502


def study_of_series(client: Any, series_uid: str) -> Optional[str]:
    """StudyInstanceUID of ``series_uid`` (None when the PACS does not know the series)."""
    found = client.search_for_series(search_filters={"SeriesInstanceUID": series_uid})
    return dicom_json_value(found[0], STUDY_UID) if found else None


def text_items(item: Dataset) -> Iterable[str]:
    """TEXT values of an SR content tree, depth first, in document order."""
    for child in getattr(item, "ContentSequence", []) or []:
        if getattr(child, "ValueType", "") == "TEXT" and str(getattr(child, "TextValue", "")).strip():
            yield str(child.TextValue)
        yield from text_items(child)


def is_measurement_report(sr: Dataset) -> bool:
    codes = getattr(sr, "ConceptNameCodeSequence", None) or []
    return bool(codes) and str(codes[0].CodeValue) == MEASUREMENT_REPORT_CODE


def report_text(sr: Dataset) -> Optional[str]:
    """The report text an SR holds, or None when it is not a report (no text, or a measurement report)."""
    if is_measurement_report(sr):
        return None
    texts = list(text_items(sr))
    return "\n\n".join(texts) if texts else None


def pacs_report(client: Any, series_uid: str) -> Optional[str]:
    """The newest report SR in the study of ``series_uid``, or None when the study has none."""
    try:
        return _pacs_report(client, series_uid)
    except requests.RequestException as e:
        raise PacsError(f"the PACS did not answer the report lookup ({type(e).__name__})") from e


def _pacs_report(client: Any, series_uid: str) -> Optional[str]:
    study_uid = study_of_series(client, series_uid)
    if not study_uid:
        return None
    series = client.search_for_series(study_uid, search_filters={"Modality": "SR"})
    newest_first = sorted(series, key=lambda m: (dicom_json_value(m, SERIES_DATE) or "", dicom_json_value(m, SERIES_TIME) or ""), reverse=True)
    for meta in newest_first:
        sr_series = dicom_json_value(meta, SERIES_UID)
        for sr in client.retrieve_series(study_uid, sr_series):
            text = report_text(sr)
            if text is not None:
                logger.info(f"report of series {series_uid}: SR series {sr_series} ({len(text)} characters)")
                return text
    return None
