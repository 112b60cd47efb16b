"""Chest reports parse into the 10 Reg2RG regions (headings first, then words)."""
from __future__ import annotations

import pytest

from lib.anatomy.labels import CHEST_REGIONS
from lib.data.synthetic.study import generate_study
from lib.reports import parse_report
from lib.reports.regions import finding_term_kind, heading_region, sentence_region, text_region
from lib.reports.schema import strip_heading


def test_generated_chest_reports_regions_and_kinds_match_truth():
    n = wrong_region = wrong_kind = 0
    for seed in range(30):
        s = generate_study(seed, "tiny", body="chest")
        p = parse_report(s.report)
        assert len(p.sentences) == len(s.truth["sentences"])
        for t, q in zip(s.truth["sentences"], p.sentences):
            if t["section"] != "findings" or t["kind"] == "non_diagnostic":
                continue
            n += 1
            wrong_region += t["region"] != q.region
            wrong_kind += t["kind"] != q.kind.value
        sections = p.region_sections()
        assert set(sections) == set(CHEST_REGIONS)
        for region, text in s.truth["region_reports"].items():
            assert p.region_text(region) == text
    assert n > 400 and wrong_region == 0 and wrong_kind == 0


@pytest.mark.parametrize(
    "text,section,region",
    [
        ("A 6 mm nodule in the right upper lobe.", "findings", "lung"),
        ("A 12 mm hypodense nodule in the left thyroid lobe.", "findings", "thyroid"),
        ("Small bilateral pleural effusions.", "findings", "pleura"),
        ("Moderate pericardial effusion.", "findings", "heart"),
        ("No mediastinal or hilar lymphadenopathy.", "findings", "mediastinum"),
        ("Small hiatal hernia.", "findings", "esophagus"),
        ("No endobronchial lesion.", "findings", "trachea and bronchi"),
        ("Degenerative changes of the thoracic spine.", "findings", "bone"),
        ("No suspicious breast mass.", "findings", "breast"),
        ("The visualized upper abdomen is unremarkable.", "findings", "abdomen"),
        ("Unremarkable.", "osseous structures", "bone"),  # the heading decides
        ("The thyroid is normal.", "lungs", "lung"),  # even against the words
    ],
)
def test_sentence_region(text, section, region):
    assert sentence_region(text, section) == region


def test_unknown_text_and_headings():
    assert text_region("The patient tolerated the procedure.") is None
    assert heading_region("FINDINGS") is None and heading_region("Pleural  Spaces") == "pleura"


@pytest.mark.parametrize(
    "text,kind",
    [("Small left pleural effusion.", "finding"), ("No pleural effusion.", "negative"), ("Cardiomegaly.", "finding"),
     ("The heart is normal in size.", None), ("There is no pneumothorax.", "negative")],
)
def test_finding_terms(text, kind):
    assert finding_term_kind(text) == kind


def test_strip_heading():
    assert strip_heading("Lungs: The lungs are clear.") == "The lungs are clear."
    assert strip_heading("Trachea and bronchi: Patent.") == "Patent."
    assert strip_heading("Ratio 1:2 noted.") == "Ratio 1:2 noted."


def test_abdominal_report_sentences_unchanged_in_kind():
    s = generate_study(5, "tiny")
    p = parse_report(s.report)
    for t, q in zip(s.truth["sentences"], p.sentences):
        if t["kind"] == "finding" and not t["restates"]:
            assert q.kind.value == "finding"
