"""``store_dicom`` and the DICOMweb datastore's own SEG handling, without a PACS (fakes record what
would be sent); the Orthanc e2e test does the same against a real one."""
from __future__ import annotations

import io

import pydicom
import pytest

from lib.errors import InvalidParamsError
from lib.schema import GroundingResult, ModelInfo, TaskType
from lib.serving.dicom_store import check_store_request, store_answer, wants_store
from lib.serving.dicomweb import RadgroundDICOMwebDatastore, segments_from_label_info
from lib.writers.dicom_seg import FINAL_CONTENT_LABEL, MODEL_CONTENT_LABEL, segment_names, write_seg
from lib.writers.dicom_sr import read_findings
from tests.serving.test_pacs import FakeDicomWeb
from tests.writers.dicom_fixtures import make_study


def _as_received(ds) -> pydicom.Dataset:
    """The dataset as the PACS would store it (written and read back)."""
    buf = io.BytesIO()
    ds.save_as(buf, write_like_original=False)
    buf.seek(0)
    return pydicom.dcmread(buf)


class FakePacsDatastore:
    """What store_answer uses of RadgroundDICOMwebDatastore: the CT instances, the cached image, STOW."""

    def __init__(self, study):
        self.study, self.stored = study, []

    def source_instances(self, image_id):
        return list(self.study["ct"])

    def get_image_uri(self, image_id):
        return self.study["image_file"]

    def store(self, datasets):
        self.stored.append(list(datasets))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(str(tmp_path_factory.mktemp("store")))


@pytest.mark.parametrize("value, expected", [(True, True), ("true", True), ("1", True), (False, False), ("false", False), (None, False)])
def test_store_flag(value, expected):
    assert wants_store({"store_dicom": value}) is expected
    assert wants_store({}) is False


def test_store_is_refused_before_any_model_runs_without_a_pacs_series(study):
    check_store_request({"store_dicom": False}, object(), image_is_upload=False)  # not asked: nothing checked
    with pytest.raises(InvalidParamsError, match="DICOMweb datastore") as e:
        check_store_request({"store_dicom": True}, object(), image_is_upload=False)
    assert e.value.status_code == 422
    with pytest.raises(InvalidParamsError, match="uploaded"):
        check_store_request({"store_dicom": "true"}, FakePacsDatastore(study), image_is_upload=True)


def test_store_answer_sends_one_seg_and_one_sr_with_names_and_sentences(study):
    ds = FakePacsDatastore(study)
    answer = {"file": study["label_file"], "params": {"grounding": study["grounding"].model_dump(mode="json")}}
    out = store_answer(ds, "series", answer)
    assert out["stored"] is True and len(ds.stored) == 1  # one STOW request
    seg, sr = (_as_received(d) for d in ds.stored[0])
    grounded = [f for f in study["grounding"].findings if f.grounded]
    assert set(segment_names(seg).values()) == {f.label_name for f in grounded}
    assert seg.ContentLabel == MODEL_CONTENT_LABEL and seg.StudyInstanceUID == study["ct"][0].StudyInstanceUID
    assert [r["sentence"] for r in read_findings(sr)] == [f.sentence.text for f in grounded]
    assert out["seg"]["series_uid"] == seg.SeriesInstanceUID and out["sr"]["sop_instance_uid"] == sr.SOPInstanceUID
    assert out["seg"]["segments"] == {str(k): v for k, v in segment_names(seg).items()}


def test_an_answer_with_nothing_grounded_stores_nothing(study):
    ds = FakePacsDatastore(study)
    empty = GroundingResult(model=ModelInfo(name="gleve", version="x", task_type=TaskType.LESION_GROUNDING))
    out = store_answer(ds, "series", {"file": study["label_file"], "params": {"grounding": empty.model_dump(mode="json")}})
    assert out["stored"] is False and "no segment" in out["reason"] and not ds.stored
    out = store_answer(ds, "series", {"file": study["label_file"], "params": {"grounding": None}})
    assert out["stored"] is False and not ds.stored


def test_segments_from_slicer_label_info():
    segs = segments_from_label_info([{"name": "lesion 1 — liver", "idx": 1}, {"name": "lesion 3", "idx": 3}], [1, 2, 3])
    assert [(s.label, s.name) for s in segs] == [(1, "lesion 1 — liver"), (2, "segment 2"), (3, "lesion 3")]
    segs = segments_from_label_info({"a": 2, "a ": 5, "background": 0}, [2, 5])
    assert [(s.label, s.name) for s in segs] == [(2, "a"), (5, "a ")]
    assert [s.name for s in segments_from_label_info(None, [4])] == ["segment 4"]
    dup = segments_from_label_info([{"name": "x", "idx": 1}, {"name": "x", "idx": 2}], [1, 2])
    assert len({s.name for s in dup}) == 2


class FakeSegPacs(FakeDicomWeb):
    def retrieve_series_metadata(self, study_instance_uid, series_instance_uid):
        return [d.to_json_dict() for d in self.retrieve_series(study_instance_uid, series_instance_uid)]


def test_model_answers_in_the_pacs_are_not_finished_labels(study):
    """MONAI Label counts every SEG as a final label; a GROUNDING SEG (a model's answer) must not count."""
    model_seg = write_seg(study["grounding"], study["label_file"], study["ct"]).dataset
    ds = object.__new__(RadgroundDICOMwebDatastore)  # only the PACS side: no cache folder needed
    ds._client, ds._search_filter = FakeSegPacs(study["ct"] + [model_seg]), {"Modality": "CT"}
    ct_series = study["ct"][0].SeriesInstanceUID
    assert ds.list_images() == [ct_series]
    assert ds.final_segs() == [] and ds.get_labeled_images() == []
    final_seg = write_seg(study["grounding"], study["label_file"], study["ct"], content_label=FINAL_CONTENT_LABEL).dataset
    ds._client.datasets.append(final_seg)
    assert ds.final_segs() == [{"image": ct_series, "label": final_seg.SeriesInstanceUID}]
    assert ds.get_labeled_images() == [ct_series]
