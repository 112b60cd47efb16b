"""Sentence splitting: spans are exact, sections are tracked, decimals/abbreviations never split."""
from __future__ import annotations

import pytest

from lib.reports.sentences import split_sentences

REPORT = """CLINICAL HISTORY: Abdominal pain. Evaluate for mass.
TECHNIQUE: Axial CT images of the abdomen were obtained after IV contrast (approx. 100 mL).
COMPARISON: CT from 01/02/2023, e.g. prior study vs. outside images.

FINDINGS:
Liver: A 1.8 cm hypodense lesion in segment VII, unchanged. Dr. Lee reviewed.
Spleen: Normal.
Kidneys: Two cysts in the left kidney measuring 1.1 cm and 2.3 cm, respectively; no hydronephrosis.
The pancreas is atrophic and
shows a 9 mm cyst in the tail.

IMPRESSION:
1. 1.8 cm segment VII hepatic lesion.
2. Left renal cysts.
"""


def _texts(text):
    return [s.text for s in split_sentences(text)]


def test_spans_are_exact_and_ordered():
    sents = split_sentences(REPORT)
    last = -1
    for i, s in enumerate(sents):
        assert s.index == i
        assert REPORT[s.span[0] : s.span[1]] == s.text
        assert s.span[0] > last
        last = s.span[1]


def test_sections_and_sentences():
    sents = split_sentences(REPORT)
    got = [(s.section, s.text) for s in sents]
    assert got == [
        ("history", "CLINICAL HISTORY: Abdominal pain."),
        ("history", "Evaluate for mass."),
        ("technique", "TECHNIQUE: Axial CT images of the abdomen were obtained after IV contrast (approx. 100 mL)."),
        ("comparison", "COMPARISON: CT from 01/02/2023, e.g. prior study vs. outside images."),
        ("findings", "FINDINGS:"),  # a header alone on its line is a (non-diagnostic) sentence
        ("liver", "Liver: A 1.8 cm hypodense lesion in segment VII, unchanged."),
        ("liver", "Dr. Lee reviewed."),
        ("spleen", "Spleen: Normal."),
        ("kidneys", "Kidneys: Two cysts in the left kidney measuring 1.1 cm and 2.3 cm, respectively; no hydronephrosis."),
        ("kidneys", "The pancreas is atrophic and\nshows a 9 mm cyst in the tail."),  # region lasts to a blank line
        ("impression", "IMPRESSION:"),
        ("impression", "1.8 cm segment VII hepatic lesion."),
        ("impression", "Left renal cysts."),
    ]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Lesion measures 1.8 cm. Next sentence.", ["Lesion measures 1.8 cm.", "Next sentence."]),
        ("Cyst vs. hemangioma. Stable.", ["Cyst vs. hemangioma.", "Stable."]),
        ("Measures approx. 2 cm in segment 7. Fine.", ["Measures approx. 2 cm in segment 7.", "Fine."]),
        ("Small foci, e.g. in segment 2, are stable.", ["Small foci, e.g. in segment 2, are stable."]),
        ("Seen by Dr. Smith. Ok.", ["Seen by Dr. Smith.", "Ok."]),
        ("Is this a cyst? Probably! Yes.", ["Is this a cyst?", "Probably!", "Yes."]),
        ("IMPRESSION: 1. Renal mass. 2. Liver cyst.", ["IMPRESSION:", "Renal mass.", "Liver cyst."]),
        ("1. Renal mass.\n2) Liver cyst.", ["Renal mass.", "Liver cyst."]),
        ("Cyst in segment V. Lesion in segment I. Done.", ["Cyst in segment V.", "Lesion in segment I.", "Done."]),
        ("Liver: normal. Spleen: normal.", ["Liver: normal.", "Spleen: normal."]),
        ("- 12 mm cyst\n- 8 mm cyst", ["12 mm cyst", "8 mm cyst"]),
        ("No lesion\nNormal spleen", ["No lesion", "Normal spleen"]),
        ("Mass in the\nright kidney.", ["Mass in the\nright kidney."]),
        ("FINDINGS:\n\n   \n", ["FINDINGS:"]),
        ("....  ---", []),
    ],
)
def test_split_cases(text, expected):
    assert _texts(text) == expected


def test_matches_generator_convention_on_a_structured_report():
    text = (
        "EXAMINATION: CT ABDOMEN AND PELVIS WITH CONTRAST\n\nHISTORY: Weight loss.\n\n"
        "TECHNIQUE: Axial images were obtained. Coronal images were reviewed.\n\nFINDINGS:\n"
        "LIVER: A 12 mm cyst in hepatic segment 7. No other lesion.\n\nIMPRESSION:\n1. Hepatic cyst."
    )
    assert _texts(text) == [
        "EXAMINATION: CT ABDOMEN AND PELVIS WITH CONTRAST",
        "HISTORY: Weight loss.",
        "TECHNIQUE: Axial images were obtained.",
        "Coronal images were reviewed.",
        "FINDINGS:",
        "LIVER: A 12 mm cyst in hepatic segment 7.",
        "No other lesion.",
        "IMPRESSION:",
        "Hepatic cyst.",
    ]


def test_crlf_and_unicode():
    text = "Liver: 3.2 \u00d7 2.1 cm lesion.\r\nSpleen: normal.\r\n"
    sents = split_sentences(text)
    assert [s.text for s in sents] == ["Liver: 3.2 \u00d7 2.1 cm lesion.", "Spleen: normal."]
    for s in sents:
        assert text[s.span[0] : s.span[1]] == s.text
