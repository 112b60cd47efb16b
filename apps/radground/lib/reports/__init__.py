"""Report parsing: free text -> sentences -> lesion units (000 §2.2).

Public API::

    from lib.reports import parse_report, ReportError
    parsed = parse_report(text)                                  # rule backend, no model
    parsed = parse_report(text, backend="llm", llm_dir="/models/qwen3-8b", fallback="rules")

Modules: ``sentences`` (splitting with spans), ``vocabulary`` (word lists), ``measurements``
(sizes/HU), ``rule_parser`` (default backend), ``llm_parser`` (transformers backend), ``parse``
(validation + dispatch), ``errors``.
"""
from lib.reports.errors import (
    EmptyReportError,
    LLMUnavailableError,
    ReportError,
    ReportParseError,
    ReportTooLongError,
)
from lib.reports.parse import DEFAULT_MAX_CHARS, parse_report, validate_report_text
from lib.reports.schema import LesionUnit, ParsedReport, Sentence, SentenceKind
from lib.reports.sentences import split_sentences

__all__ = [
    "parse_report",
    "validate_report_text",
    "split_sentences",
    "DEFAULT_MAX_CHARS",
    "ReportError",
    "EmptyReportError",
    "ReportTooLongError",
    "ReportParseError",
    "LLMUnavailableError",
    "LesionUnit",
    "ParsedReport",
    "Sentence",
    "SentenceKind",
]
