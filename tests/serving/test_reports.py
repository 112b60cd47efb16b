"""Report lookup and validation for infer requests."""
from __future__ import annotations

import os

import pytest

from lib.errors import MissingReportError
from lib.reports import ReportError
from lib.serving.reports import datastore_report, validated_report


class FakeDatastore:
    """Only what the lookup uses: MONAI Label's get_image_info (path + info fields)."""

    def __init__(self, root, info=None):
        self.root, self.info = root, info or {}

    def get_image_info(self, image_id):
        return {"path": os.path.join(self.root, f"{image_id}.nii.gz"), **self.info.get(image_id, {})}


def test_sidecar_first_then_datastore_info(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "a.txt").write_text("Liver: 12 mm hypodense lesion in segment VII.", encoding="utf-8")
    ds = FakeDatastore(str(tmp_path), {"a": {"report": "ignored"}, "b": {"report": "Unremarkable pancreas."}})
    assert datastore_report(ds, "a").startswith("Liver: 12 mm")
    assert datastore_report(ds, "b") == "Unremarkable pancreas."
    assert datastore_report(ds, "c") is None


def test_non_utf8_sidecar_is_a_report_error(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "a.txt").write_bytes(b"Liver \xff\xfe lesion")
    with pytest.raises(ReportError, match="UTF-8"):
        datastore_report(FakeDatastore(str(tmp_path)), "a")


def test_validated_report_parses_and_keeps_the_text():
    parsed = validated_report("FINDINGS: Two hypodense lesions in segments VI and VII measuring 12 and 18 mm. No pancreatic mass.")
    assert [u.sub_location for u in parsed.findings] == [["segment VI"], ["segment VII"]]
    assert parsed.text.startswith("FINDINGS")


@pytest.mark.parametrize(
    "text, error, fragment",
    [
        (None, MissingReportError, "no report"),
        ("", ReportError, "empty"),
        (b"\xff\xfe", ReportError, "UTF-8"),
        ("lorem ipsum dolor sit amet. " * 300, ReportError, "no recognisable radiology content"),
        ("Liver lesion. " * 3000, ReportError, "long"),
    ],
    ids=["missing", "empty", "binary", "nonsense", "too-long"],
)
def test_bad_reports_are_refused_with_a_reason(text, error, fragment):
    with pytest.raises(error) as e:
        validated_report(text)
    assert fragment.lower() in e.value.message.lower()
    assert 400 <= e.value.status_code < 500
