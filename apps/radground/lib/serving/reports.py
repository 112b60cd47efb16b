"""Where an infer task's report text comes from.

Order: ``params["report"]`` in the request (Slicer's options panel, OHIF, the REST client), then
the datastore's sidecar ``<studies>/reports/<image id>.txt``, then a ``report`` field in the
image's datastore info (set via the datastore API), then, on a DICOMweb datastore, the report SR of
the image's study in the PACS (:mod:`lib.serving.pacs`). The text is validated before any model runs.

3D Slicer's options panel shows a model's ``config`` entries from ``/info`` and sends them back
with every request; a string entry left empty comes back as ``""``. Tasks that read a report
therefore advertise ``report: ""`` (:func:`advertise_report_option`), and an empty ``report`` on
such a task means "use the study's own report" (:func:`requested_report`). Whitespace-only text,
or an empty report sent to a task that does not advertise the entry, is still a bad report (422).
"""
from __future__ import annotations

import os
from typing import Any, Optional

from lib.data.studies import read_report
from lib.errors import MissingReportError
from lib.reports import ReportError, parse_report
from lib.reports.schema import ParsedReport, SentenceKind

#: Longest report accepted (characters); a CT report is rarely over 5,000. ``--conf max_report_chars``.
DEFAULT_MAX_REPORT_CHARS = 20_000


#: The options-panel entry a report-reading task advertises in ``/info`` (its default: no text typed).
REPORT_OPTION = "report"
UNSET_REPORT = ""


def advertise_report_option(task: Any) -> None:
    """Add ``report: ""`` to ``task``'s config, so Slicer's options panel gives it a text field."""
    task.config().setdefault(REPORT_OPTION, UNSET_REPORT)


def requested_report(request: dict, task: Any) -> Any:
    """The report the request itself carries, or None: an empty options-panel entry is no report."""
    text = request.get(REPORT_OPTION)
    if text == UNSET_REPORT and REPORT_OPTION in (task.config() or {}):
        return None
    return text


def datastore_report(datastore: Any, image_id: str) -> Optional[str]:
    """The report the datastore holds for ``image_id`` (sidecar, info field, or the PACS), or None."""
    info = datastore.get_image_info(image_id) or {}
    path = info.get("path")
    try:
        text = read_report(os.path.dirname(path), image_id) if path else None
    except UnicodeDecodeError as e:
        raise ReportError("the stored report of this study is not valid UTF-8 text") from e
    if text is not None:
        return text
    text = info.get("report")
    if isinstance(text, str):
        return text
    client = getattr(datastore, "_client", None)  # MONAI Label's DICOMWebDatastore keeps its DICOMweb client here
    if client is not None:
        from lib.serving.pacs import pacs_report

        return pacs_report(client, image_id)
    return None


def validated_report(text: Any, max_chars: int = DEFAULT_MAX_REPORT_CHARS) -> ParsedReport:
    """Parse ``text`` and insist it reads as a radiology report (mentions an organ or a finding)."""
    if text is None:
        raise MissingReportError("no report: send params.report or store reports/<image id>.txt in the datastore")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ReportError("report is not valid UTF-8 text") from e
    parsed = parse_report(text, max_chars=max_chars)
    clinical = [s for s in parsed.sentences if s.kind != SentenceKind.NON_DIAGNOSTIC or s.organs]
    if not clinical:
        raise ReportError("report has no recognisable radiology content (no organ, finding or normal statement)")
    return parsed
