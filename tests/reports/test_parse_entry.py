"""parse_report: input validation, error family, and linear-time behaviour on hostile input."""
from __future__ import annotations

import random
import string
import time

import pytest

from lib.errors import RadgroundError
from lib.reports import (
    EmptyReportError,
    ParsedReport,
    ReportError,
    ReportTooLongError,
    SentenceKind,
    parse_report,
)


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n"])
def test_empty_report(text):
    with pytest.raises(EmptyReportError) as ei:
        parse_report(text)
    assert ei.value.message == "empty report"
    assert isinstance(ei.value, ReportError) and isinstance(ei.value, RadgroundError)


@pytest.mark.parametrize("value", [None, 42, b"Liver: normal.", ["Liver: normal."]])
def test_non_string(value):
    with pytest.raises(ReportError, match="must be text"):
        parse_report(value)


def test_too_long():
    with pytest.raises(ReportTooLongError) as ei:
        parse_report("Liver normal. " * 2000, max_chars=20000)
    assert ei.value.status_code == 422 and "limit is 20000" in ei.value.message
    assert parse_report("Liver: normal.", max_chars=20)  # at the limit is fine


def test_unknown_backend_and_llm_without_dir():
    with pytest.raises(ReportError, match="unknown report parser backend"):
        parse_report("Liver: normal.", backend="magic")
    with pytest.raises(ReportError, match="llm_dir"):
        parse_report("Liver: normal.", backend="llm")


def test_no_sentence_is_an_error():
    with pytest.raises(ReportError, match="no sentences"):
        parse_report("... --- ;;; ...")


def test_nul_bytes_rejected():
    with pytest.raises(ReportError):
        parse_report("Liver\x00 normal.")


def _nonsense(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "     .,;:-x()/%\n"
    return "".join(rng.choice(alphabet) for _ in range(n))


@pytest.mark.parametrize(
    "text",
    [
        _nonsense(10_000),
        "a" * 10_000,
        " " * 5_000 + "x" * 5_000,
        "1 " * 5_000,  # numbers everywhere, none with a unit
        "1 x " * 2_500,  # dimension chains
        "segment " * 1_250,
        "no " * 3_333 + "lesion",
        "1." * 5_000,
        "(" * 5_000 + ")" * 5_000,
        ("lesion and " * 1_000)[:10_000],
        ("-" * 9_999) + "1",
        ("HU " * 3_333)[:10_000],
        ("hepatic lesion 12 mm segment 7 left renal cyst, " * 250)[:10_000],
        ("No lesion. " * 1_000)[:10_000],
        "1 " * 4_997 + "lesion",
        ("cyst, " * 2_000)[:10_000],
        ("15 HU cyst; " * 1_000)[:10_000],
        ("bilateral renal cysts, the largest right, " * 300)[:10_000],
    ],
    ids=["random", "aaaa", "spaces", "numbers", "x-chains", "segments", "no-no-no", "1.1.1", "parens", "lesion-and", "dashes", "HU", "organs-lesions", "many-sentences", "numbers-then-noun",
         "cyst-list", "hu-list", "bilateral-list"],
)
def test_hostile_10k_input_is_fast(text):
    assert len(text) >= 9_999
    t0 = time.perf_counter()
    try:
        parsed = parse_report(text)
    except ReportError:
        parsed = None
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, f"{elapsed:.2f}s"
    if parsed is not None:
        assert isinstance(parsed, ParsedReport)


def test_random_nonsense_gives_no_units():
    parsed = parse_report(_nonsense(10_000, seed=1))
    assert parsed.lesions == []
    assert all(s.kind == SentenceKind.NON_DIAGNOSTIC for s in parsed.sentences)


def test_full_report_end_to_end():
    text = (
        "EXAM: CT abdomen with contrast.\n"
        "HISTORY: Known hepatic metastases.\n\n"
        "FINDINGS:\n"
        "Liver: Two hypodense lesions in segments VI and VII measuring 12 and 18 mm.\n"
        "Spleen: Unremarkable.\n"
        "Pancreas: No pancreatic mass or ductal dilatation.\n\n"
        "IMPRESSION:\n"
        "1. Two hepatic lesions, likely metastases.\n"
    )
    parsed = parse_report(text)
    assert parsed.parser == "rules"
    kinds = [(s.section, s.kind) for s in parsed.sentences]
    assert kinds == [
        ("technique", SentenceKind.NON_DIAGNOSTIC),
        ("history", SentenceKind.NON_DIAGNOSTIC),  # "hepatic metastases" in the history is not a finding
        ("findings", SentenceKind.NON_DIAGNOSTIC),  # the "FINDINGS:" header line
        ("liver", SentenceKind.FINDING),
        ("spleen", SentenceKind.NORMAL),
        ("pancreas", SentenceKind.NEGATIVE),
        ("impression", SentenceKind.NON_DIAGNOSTIC),
        ("impression", SentenceKind.FINDING),
    ]
    findings = [u for u in parsed.findings if u.sentence_index == 3]
    assert [(u.sub_location, u.size_mm) for u in findings] == [(["segment VI"], [12.0]), (["segment VII"], [18.0])]
    assert len(parsed.findings) == 2  # the impression restates them
    imp = [u for u in parsed.lesions if u.sentence_index == 7]
    assert len(imp) == 1 and imp[0].restates and imp[0].count == 2 and not imp[0].count_is_lower_bound
    assert imp[0].lesion_type == "metastasis" and imp[0].hedged
    for u in parsed.lesions:
        assert text[u.span[0] : u.span[1]] == u.text


def test_throughput(capsys):
    text = (
        "FINDINGS: Liver: 1.2 cm lesion in segment II; 8 mm cyst in segment V. "
        "Kidneys: Exophytic 2.3 cm enhancing lesion arising from the lower pole of the left kidney. "
        "Pancreas: Likely cyst in the pancreatic tail, 9 mm (HU 12). Spleen: normal.\n"
    ) * 3
    n = 50
    t0 = time.perf_counter()
    for _ in range(n):
        parse_report(text)
    rate = n / (time.perf_counter() - t0)
    with capsys.disabled():
        print(f"\n[reports] rule parser throughput: {rate:.0f} reports/s ({len(text)} chars each)")
