"""Errors of report parsing: one family, each with a message a user can act on.

They derive from :class:`lib.errors.RadgroundError`, so the server answers them with their
``status_code`` and message instead of a stack trace.
"""
from __future__ import annotations

from lib.errors import RadgroundError


class ReportError(RadgroundError):
    """The report text cannot be used (wrong type, empty, too long, no sentences)."""

    status_code = 422


class EmptyReportError(ReportError):
    """Empty or whitespace-only report."""


class ReportTooLongError(ReportError):
    """Report over the configured character limit (422 like all bad report text, see README)."""


class ReportParseError(ReportError):
    """The LLM backend produced output that is not a valid lesion list."""

    status_code = 502

    def __init__(self, message: str, raw_output: str = ""):
        super().__init__(message)
        #: The model's raw text (kept for logs and debugging; not sent to clients).
        self.raw_output = raw_output


class LLMUnavailableError(ReportError):
    """The LLM backend cannot be loaded (no model folder, broken weights, missing adapter)."""

    status_code = 503
