"""Entry point: validate the report text, then hand it to the chosen backend.

Validation happens here, once, so every backend and every caller (server, trainer, scripts) gets
the same errors: not a string, empty/whitespace-only, or over ``max_chars`` -> :class:`ReportError`
subclasses with a message a user can act on. A report with text but no sentence containing a
letter or digit (e.g. only punctuation) is also an error; a report of nonsense words is *not*: it
parses to sentences with zero lesion units (the serving layer decides whether that is acceptable).
"""
from __future__ import annotations

from typing import Any, Optional

from lib.reports.errors import EmptyReportError, ReportError, ReportTooLongError
from lib.reports.schema import ParsedReport

#: Default longest report accepted, in characters.
DEFAULT_MAX_CHARS = 20_000
BACKENDS = ("rules", "llm")


def validate_report_text(text: Any, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Return ``text`` if it is a usable report string, else raise a :class:`ReportError`."""
    if not isinstance(text, str):
        raise ReportError(f"report must be text (str), got {type(text).__name__}")
    if not text.strip():
        raise EmptyReportError("empty report")
    if max_chars is not None and len(text) > max_chars:
        raise ReportTooLongError(f"report is {len(text)} characters long; the limit is {max_chars}")
    if "\x00" in text:
        raise ReportError("report contains NUL characters (binary data?)")
    return text


def parse_report(
    text: Any,
    backend: str = "rules",
    llm_dir: Optional[str] = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    *,
    adapter_dir: Optional[str] = None,
    fallback: Optional[str] = None,
    max_new_tokens: int = 1024,
) -> ParsedReport:
    """Parse a radiology report into sentences and lesion units.

    ``backend="rules"`` (default) needs no model. ``backend="llm"`` loads a causal LM from the local
    folder ``llm_dir`` (plus an optional PEFT ``adapter_dir``); with ``fallback="rules"`` an
    unusable LLM answer falls back to the rule parser (logged) instead of raising
    :class:`ReportParseError`.
    """
    text = validate_report_text(text, max_chars)
    if backend == "rules":
        from lib.reports.rule_parser import RuleParser

        parsed = RuleParser().parse(text)
    elif backend == "llm":
        from lib.reports.llm_parser import get_llm_parser

        if not llm_dir:
            raise ReportError("backend 'llm' needs llm_dir, a local folder with the model")
        parsed = get_llm_parser(llm_dir, adapter_dir=adapter_dir, fallback=fallback, max_new_tokens=max_new_tokens).parse(text)
    else:
        raise ReportError(f"unknown report parser backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not parsed.sentences:
        raise ReportError("report has no sentences (no letters or digits)")
    return with_regions(parsed)


def with_regions(parsed: ParsedReport) -> ParsedReport:
    """Fill ``Sentence.region`` (heading first, then words) for every diagnostic sentence.

    Chest findings without a lesion noun ("Small left pleural effusion.", "Cardiomegaly.") are
    recognised here as findings (or negatives), so a chest report's sections are complete.
    """
    from lib.reports.regions import finding_term_kind, sentence_region
    from lib.reports.schema import SentenceKind
    from lib.reports.sentences import NON_DIAGNOSTIC_SECTIONS
    from lib.reports.vocabulary import RECOMMENDATION_RE

    sentences = []
    for s in parsed.sentences:
        kind = s.kind
        if kind == SentenceKind.NON_DIAGNOSTIC and s.section not in NON_DIAGNOSTIC_SECTIONS and not RECOMMENDATION_RE.search(s.text):
            kind = SentenceKind(finding_term_kind(s.text) or kind)
        region = None if kind == SentenceKind.NON_DIAGNOSTIC else sentence_region(s.text, s.section)
        sentences.append(s.model_copy(update={"kind": kind, "region": region}))
    return parsed.model_copy(update={"sentences": sentences})
