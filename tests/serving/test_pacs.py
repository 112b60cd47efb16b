"""Report lookup from a PACS (DICOMweb) and the Slicer options-panel ``report`` entry, against an
in-memory DICOMweb client that answers QIDO/WADO as Orthanc does (DICOM JSON, datasets)."""
from __future__ import annotations

import pydicom
import pytest
import requests
from pydicom.sr.codedict import codes

from lib.data.dicom_export import report_sr
from lib.serving.pacs import PacsError, pacs_report, report_text
from lib.serving.reports import advertise_report_option, datastore_report, requested_report
from lib.writers.dicom_sr import seg_and_sr
from tests.writers.dicom_fixtures import make_study


class FakeDicomWeb:
    """search_for_series / retrieve_series over a list of datasets (the calls pacs_report makes)."""

    def __init__(self, datasets, fail=False):
        self.datasets, self.fail = list(datasets), fail

    def _series(self):
        out = {}
        for ds in self.datasets:
            out.setdefault(ds.SeriesInstanceUID, ds)
        return out.values()

    def search_for_series(self, study_instance_uid=None, search_filters=None):
        if self.fail:
            raise requests.ConnectionError("PACS down")
        hits = []
        for ds in self._series():
            if study_instance_uid and ds.StudyInstanceUID != study_instance_uid:
                continue
            if any(str(getattr(ds, k, "")) != str(v) for k, v in (search_filters or {}).items()):
                continue
            meta = pydicom.Dataset()
            for k in ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesDate", "SeriesTime"):
                if hasattr(ds, k):
                    setattr(meta, k, getattr(ds, k))
            hits.append(meta.to_json_dict())
        return hits

    def retrieve_series(self, study_instance_uid, series_instance_uid):
        return [d for d in self.datasets if d.StudyInstanceUID == study_instance_uid and d.SeriesInstanceUID == series_instance_uid]


class FakeDicomWebDatastore:
    def __init__(self, client):
        self._client = client

    def get_image_info(self, image_id):
        return {"path": "/nonexistent/cache/" + image_id + ".nii.gz"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(str(tmp_path_factory.mktemp("pacs")))


def test_the_report_sr_of_the_series_study_is_found_verbatim(study):
    sr = report_sr(study["report"], study["ct"], "synth_20002")
    client = FakeDicomWeb(study["ct"] + [sr])
    ct_series = study["ct"][0].SeriesInstanceUID
    assert pacs_report(client, ct_series) == study["report"]
    assert datastore_report(FakeDicomWebDatastore(client), ct_series) == study["report"]


def test_our_own_measurement_report_is_never_read_back_as_the_report(study):
    seg, measurement_sr = seg_and_sr(study["grounding"], study["label_file"], study["image_file"], study["ct"])
    assert measurement_sr.ConceptNameCodeSequence[0].CodeValue == codes.DCM.ImagingMeasurementReport.value
    assert report_text(measurement_sr) is None
    client = FakeDicomWeb(study["ct"] + [seg.dataset, measurement_sr])
    assert pacs_report(client, study["ct"][0].SeriesInstanceUID) is None
    # with the report beside it, the report (not a sentence copied into the measurement SR) is found
    client.datasets.append(report_sr(study["report"], study["ct"], "synth_20002"))
    assert pacs_report(client, study["ct"][0].SeriesInstanceUID) == study["report"]


def test_unknown_series_has_no_report_and_a_down_pacs_is_a_502(study):
    assert pacs_report(FakeDicomWeb(study["ct"]), "1.2.3.4") is None
    with pytest.raises(PacsError) as e:
        pacs_report(FakeDicomWeb(study["ct"], fail=True), study["ct"][0].SeriesInstanceUID)
    assert e.value.status_code == 502 and "PACS" in e.value.message


class Task:
    def __init__(self, config):
        self._config = config

    def config(self):
        return self._config


def test_an_empty_options_panel_entry_means_the_studys_own_report():
    task = Task({"threshold": 0.5})
    advertise_report_option(task)
    assert task.config() == {"threshold": 0.5, "report": ""}
    assert requested_report({"report": ""}, task) is None  # what Slicer sends when nothing was typed
    assert requested_report({}, task) is None
    assert requested_report({"report": "   "}, task) == "   "  # whitespace stays a bad report (422 later)
    assert requested_report({"report": "Liver cyst."}, task) == "Liver cyst."
    assert requested_report({"report": ""}, Task({})) == ""  # a task without the entry: "" is an empty report
