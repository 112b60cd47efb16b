"""Size and HU extraction: units, lists, ranges, prior sizes, and what is *not* a size."""
from __future__ import annotations

import pytest

from lib.reports.measurements import find_hu, find_sizes
from lib.reports.vocabulary import liver_segments, normalize_sub_location


@pytest.mark.parametrize(
    "text,expected",
    [
        ("12 mm", [[12]]),
        ("1.8 cm", [[18]]),
        ("3.2 x 2.1 cm", [[32, 21]]),
        ("2.1 x 3.2 cm", [[32, 21]]),  # long axis first
        ("12 x 9 x 8 mm", [[12, 9, 8]]),
        ("3.1 cm x 1.9 cm x 1.7 cm", [[31, 19, 17]]),
        ("up to 2.4 cm", [[24]]),
        ("12 and 18 mm", [[12], [18]]),
        ("1.1 cm and 2.3 cm, respectively", [[11], [23]]),
        ("5-mm focus", [[5]]),
        ("12mm", [[12]]),
        ("1.2-1.5 cm", [[15]]),
        ("ranging from 5 to 12 mm", [[12]]),
        ("increased from 10 to 14 mm", [[14]]),
        ("segment 7 and 8", []),
        ("2 lesions", []),
        ("measuring 9 in the right pole and 32 mm in the left", [[9], [32]]),
        ("sub-centimeter", []),
        ("12 mmHg", []),
    ],
)
def test_sizes(text, expected):
    got = [z.dims_mm for z in find_sizes(text)]
    assert got == [[float(x) for x in e] for e in expected]


def test_multiplication_sign_through_the_parser():
    from lib.reports import parse_report

    (unit,) = parse_report("A 25 \u00d7 20 mm hyperdense lesion in hepatic segment V.").findings
    assert unit.size_mm == [25.0, 20.0]


def test_prior_size_is_flagged():
    sizes = find_sizes("now measuring 3.1 cm (previously 2.2 cm)")
    assert [(z.dims_mm, z.prior) for z in sizes] == [([31.0], False), ([22.0], True)]


def test_masked_numbers_are_skipped():
    text = "segment 7 lesion, 12 mm"
    assert [z.dims_mm for z in find_sizes(text, masks=[(8, 9)])] == [[12.0]]


@pytest.mark.parametrize(
    "text,value",
    [
        ("(15 HU)", 15), ("HU 15", 15), ("(HU: -5)", -5), ("attenuation of 8 Hounsfield units", 8),
        ("mean attenuation 20 HU", 20), ("10-20 HU", 15), ("minus 30 HU", -30), ("HU of 12", 12),
    ],
)
def test_hu(text, value):
    hus = find_hu(text)
    assert len(hus) == 1 and hus[0].value == value


def test_hu_is_not_a_size_value():
    assert find_hu("HU 2 cm") == []


@pytest.mark.parametrize(
    "items,expected",
    [
        ("VI and VII", ["segment VI", "segment VII"]),
        ("IVa", ["segment IV"]),
        ("4b", ["segment IV"]),
        ("5-8", ["segment V", "segment VI", "segment VII", "segment VIII"]),
        ("II, III and IV", ["segment II", "segment III", "segment IV"]),
        ("6/7", ["segment VI", "segment VII"]),
    ],
)
def test_liver_segments(items, expected):
    assert liver_segments(items) == expected


@pytest.mark.parametrize(
    "organ,text,expected",
    [
        ("liver", "seg 7", ["segment VII"]),
        ("liver", "7", ["segment VII"]),
        ("liver", "caudate lobe", ["segment I"]),
        ("kidney_left", "inferior pole", ["lower pole"]),
        ("kidney_right", "mid pole", ["interpolar region"]),
        ("kidney_right", "upper and lower poles", ["upper pole", "lower pole"]),
        ("pancreas", "Uncinate", ["uncinate process"]),
        ("pancreas", "body/tail", ["body", "tail"]),
    ],
)
def test_normalize_sub_location(organ, text, expected):
    assert normalize_sub_location(organ, text) == expected
