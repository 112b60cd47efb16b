"""TID 1500 SR of grounded findings: each finding's group carries its report sentence, volume, long
axis and mean HU measured on its mask, and a reference to its segment in the SEG; ungrounded
findings are stated with their reason."""
from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import pydicom
import pytest

from lib.writers.dicom_seg import segment_names
from lib.writers.dicom_sr import read_findings, seg_and_sr
from tests.writers.dicom_fixtures import make_study


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    study = make_study(str(tmp_path_factory.mktemp("sr")))
    seg, sr = seg_and_sr(study["grounding"], study["label_file"], study["image_file"], study["ct"])
    return study, seg, _roundtrip(seg.dataset), _roundtrip(sr)


def _roundtrip(ds) -> pydicom.Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, write_like_original=False)
    buf.seek(0)
    return pydicom.dcmread(buf)


def test_each_grounded_finding_has_its_sentence_measurements_and_segment(delivered):
    study, seg, seg_ds, sr_ds = delivered
    assert sr_ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr_ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    rows = read_findings(sr_ds)
    grounded = [f for f in study["grounding"].findings if f.grounded]
    assert len(rows) == len(grounded)
    names = segment_names(seg_ds)
    image = nib.load(study["image_file"])
    ct = np.asarray(image.dataobj, dtype=np.float64)
    voxel_ml = abs(np.linalg.det(image.affine[:3, :3])) / 1000
    for f, row in zip(grounded, rows):
        assert row["sentence"] == f.sentence.text == study["report"][slice(*f.sentence.span)]
        assert row["seg_sop_instance_uid"] == seg_ds.SOPInstanceUID
        assert names[row["segment_number"]] == f.label_name and f.id in row["tracking_id"]
        assert row["finding_type"] == "Lesion"
        mask = study["label"] == f.label
        m = row["measurements"]
        assert m["Volume"] == (pytest.approx(mask.sum() * voxel_ml, abs=1e-3), "mL")
        assert m["Attenuation Coefficient"] == (pytest.approx(ct[mask].mean(), abs=0.06), "[hnsf'U]")
        pts = np.argwhere(mask) @ image.affine[:3, :3].T
        extent = np.linalg.norm(pts.max(0) - pts.min(0))
        assert 0 < m["Long axis"][0] <= extent + 1e-6 and m["Long axis"][1] == "mm"
        assert m["Long axis"][0] >= np.abs(pts.max(0) - pts.min(0)).max() - 1e-6  # at least the longest side


def test_ungrounded_findings_are_stated_with_their_reason(delivered):
    study, _, _, sr_ds = delivered
    texts = [str(i.TextValue) for i in sr_ds.ContentSequence if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeMeaning == "Finding"]
    missing = [f for f in study["grounding"].findings if not f.grounded]
    assert len(texts) == len(missing) == 1
    assert missing[0].sentence.text in texts[0] and missing[0].reason in texts[0]


def test_the_sr_is_in_the_ct_study_and_lists_its_evidence(delivered):
    study, seg, seg_ds, sr_ds = delivered
    assert sr_ds.StudyInstanceUID == study["dicom"].study_uid == seg_ds.StudyInstanceUID
    evidence = {
        i.ReferencedSOPInstanceUID
        for key in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence")
        for s in getattr(sr_ds, key, [])
        for ser in s.ReferencedSeriesSequence
        for i in ser.ReferencedSOPSequence
    }
    assert seg_ds.SOPInstanceUID in evidence and study["ct"][0].SOPInstanceUID in evidence
