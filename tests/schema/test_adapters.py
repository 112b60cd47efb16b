"""Each task's real answer -> the shared schema, through the one hook in RadgroundInferTask.

The tasks run in-process on small synthetic studies with untrained networks biased to answer (as
their own infer tests do): the schema's contract does not depend on training. Checked: the task's
own keys are untouched, ``result["grounding"]`` validates, findings match the task's entries one to
one, segments are the answer's ``label_names``, and boxes are the label map's voxels with mm on the
label file's own grid (read independently with nibabel).
"""
from __future__ import annotations

import numpy as np
import nibabel as nib
import pytest
import torch

from lib.configs.gleve import Gleve
from lib.configs.lesion_baseline import LesionBaseline
from lib.data.studies import generate_dataset, image_path, read_report
from lib.infers.medgrounder import MedGrounderInfer
from lib.metrics.boxes import box_voxel_to_world
from lib.networks.medgrounder import MedGrounder, MedGrounderConfig
from lib.reports import parse_report
from lib.schema import GroundingResult, TaskType, attach_grounding, detect_format, to_grounding

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("schema") / "studies")
    generate_dataset(out, [20002], preset="small", body="both")
    return out


def _grounding(result) -> GroundingResult:
    assert result.get("grounding_error") is None, result.get("grounding_error")
    return GroundingResult.model_validate(result["grounding"])


def _edges_mm(label_file, lo, hi):
    """World box of the outer voxel edges, from nibabel's RAS affine (independent of the hook's SimpleITK read)."""
    return box_voxel_to_world(np.concatenate([np.asarray(lo, float), np.asarray(hi, float) + 1]), nib.load(label_file).affine)


def test_gleve_lesions_become_findings_with_segments(studies, tmp_path):
    cfg = Gleve()
    cfg.init("gleve", str(tmp_path), {}, None)
    torch.manual_seed(0)
    cfg.network.refiner.head.conv_out.bias.data.fill_(6.0)  # answer "lesion" wherever the organ is
    torch.save({"model": cfg.network.state_dict()}, cfg.path[1])
    task = cfg.infer()["gleve"]
    report = read_report(studies, "synth_20002")
    # one description outside GLeVE's abdominal organ prior, so one finding must be ungrounded
    report = "A 12 mm nodule in the thyroid gland.\n" + report
    f, r = task({"image": image_path(studies, "synth_20002"), "parsed_report": parse_report(report).model_dump(), "device": "cpu", "model": "gleve"})
    g = _grounding(r)
    assert "lesions" in r and "label_names" in r  # the task's own keys stay
    assert g.model.task_type == TaskType.LESION_GROUNDING and g.model.version == r["model"]["version"] and g.model.name == "gleve"
    assert len(g.findings) == len(r["lesions"])
    assert g.label_names() == r["label_names"]
    label = np.asarray(nib.load(f).dataobj)
    assert g.image.shape == list(label.shape)
    assert np.allclose(g.image.affine, nib.load(f).affine, atol=1e-4)
    grounded = [x for x in g.findings if x.grounded]
    assert grounded and any(not x.grounded for x in g.findings)
    for x, e in zip(g.findings, r["lesions"]):
        assert x.sentence.text == e["sentence"] and x.sentence.span == list(e["span"]) and report[slice(*x.sentence.span)] == x.sentence.text
        assert (x.label, x.label_name, x.organ) == (e["label"], e["label_name"], e["organ"])
        assert x.reported.size_mm == e["reported_size_mm"] and x.measured.volume_ml == e["measured_volume_ml"]
        if x.grounded:
            (box,) = x.boxes
            assert box.voxel == e["box_vox"]
            assert np.allclose(box.mm, _edges_mm(f, *e["box_vox"]).reshape(2, 3), atol=0.01)
            # the task's own mm box (voxel centres) lies inside the schema's (outer edges)
            assert all(a <= b + 1e-6 for a, b in zip(box.mm[0], e["box_mm"][0])) and all(a >= b - 1e-6 for a, b in zip(box.mm[1], e["box_mm"][1]))
            assert x.score == e["verification_score"] and x.extra["candidate_entropy"] == e["candidate_entropy"]
            assert next(s for s in g.segments if s.label == x.label).finding_ids == [x.id]
        else:
            assert not x.boxes and x.reason == e["reason"]
    assert g.findings[0].sentence.text.startswith("A 12 mm nodule") and not g.findings[0].grounded


def test_medgrounder_boxes_become_findings_with_the_task_mm(studies, tmp_path):
    torch.manual_seed(0)
    hash_enc = {"backend": "hash", "dim": 32}
    net = MedGrounder(MedGrounderConfig.tiny(text_encoder=hash_enc, image_size=32, num_queries=4))
    net.conf_head.bias.data.fill_(8.0)  # every query groundable
    path = str(tmp_path / "medgrounder.pt")
    torch.save({"model": net.state_dict(), "threshold": 0.5}, path)
    task = MedGrounderInfer(path=[path], network=net, image_size=32, iso_mm=8.0)
    report = "FINDINGS:\nThe heart is enlarged. No pneumothorax.\nIMPRESSION: Cardiomegaly."
    req = {"image": image_path(studies, "chest_20002"), "parsed_report": parse_report(report).model_dump(), "device": "cpu", "model": "medgrounder", "wbf": False}
    f, r = task(req)
    g = _grounding(r)
    assert g.model.task_type == TaskType.PHRASE_GROUNDING and "sentences" in r
    boxes = [(s, b) for s in r["sentences"] for b in s["boxes"]]
    assert boxes and len([x for x in g.findings if x.grounded]) == len(boxes)
    for x, (s, b) in zip([x for x in g.findings if x.grounded], boxes):
        assert (x.sentence.text, x.label, x.label_name, x.score) == (s["text"], b["label"], b["label_name"], b["confidence"])
        assert x.boxes[0].voxel == b["box_vox"] and np.allclose(x.boxes[0].mm, b["box_mm"], atol=0.011)
    assert g.label_names() == r["label_names"]

    # nothing above the threshold: the finding sentences become ungrounded findings, the negation does not
    f, r = task(dict(req, threshold=1.0))
    g = _grounding(r)
    kinds = {s["text"]: s["kind"] for s in r["sentences"]}
    assert g.segments == [] and all(not x.grounded and "threshold 1.0" in x.reason for x in g.findings)
    assert sorted(x.sentence.text for x in g.findings) == sorted(t for t, k in kinds.items() if k == "finding")


def test_lesion_baseline_is_a_named_segmentation(studies, tmp_path):
    cfg = LesionBaseline()
    cfg.init("lesion_baseline", str(tmp_path), {}, None)
    task = cfg.infer()["lesion_baseline"]  # bundled weights
    f, r = task({"image": image_path(studies, "synth_20002"), "device": "cpu", "model": "lesion_baseline"})
    g = _grounding(r)
    assert g.model.task_type == TaskType.SEGMENTATION and g.findings == []
    assert g.label_names() == {k: v for k, v in r["label_names"].items() if v >= 1} == {"lesion": 1}
    assert g.image.shape == list(nib.load(f).shape)


def test_reg2rg_region_reports():
    """Reg2RG's answer form (its post transform on a hand-made region map; the LM is not run here)."""
    from lib.anatomy.labels import REGION_IDS
    from lib.infers.reg2rg import RegionReportsd

    regions = np.zeros((8, 8, 8), np.int64)
    regions[:4] = REGION_IDS["lung"]
    regions[4:] = REGION_IDS["heart"]
    records = [
        {"index": 0, "region": "heart", "text": "The heart is enlarged.", "recognised_area": "heart", "matched": True},
        {"index": 1, "region": "lung", "text": "", "recognised_area": None, "matched": False},
    ]
    d = RegionReportsd()({"pred": regions, "reg2rg": {"records": records, "missing": [], "raw": ""}, "result": {}})
    result = dict(d["result"], label_names=d["result"].pop("result_label_names"), model={"name": "reg2rg", "version": "x"})
    assert detect_format(result) == "region_report"
    g = to_grounding(result)
    assert g.model.task_type == TaskType.REGION_REPORT and g.generated_report == result["report"]
    assert [(x.region, x.text, x.label, x.matched) for x in g.region_reports] == [
        ("heart", "The heart is enlarged.", REGION_IDS["heart"], True),
        ("lung", "", REGION_IDS["lung"], False),
    ]
    assert all(x.label_name == x.region for x in g.region_reports)


def test_an_answer_the_adapter_cannot_read_keeps_its_keys_and_says_why():
    result = {"lesions": [{"sentence": "x"}], "label_names": {}, "model": {"version": "v"}}
    attach_grounding(result, None)
    assert result["grounding"] is None and "KeyError" in result["grounding_error"] and result["lesions"] == [{"sentence": "x"}]
    with pytest.raises(ValueError, match="no grounding adapter"):
        to_grounding(result, fmt="nonsense")
