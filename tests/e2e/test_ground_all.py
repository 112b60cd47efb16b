"""``ground_all`` through the real server and MONAI Label's own client: GLeVE, MedGrounder and
Reg2RG (bundled weights) on one chest study + its stored report, answered side by side."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from lib.data.studies import read_report
from lib.schema import GroundingResult, TaskType
from tests.e2e.conftest import start_server

pytestmark = pytest.mark.slow

MEMBERS = ["gleve", "medgrounder", "reg2rg"]
IMAGE = "chest_20000"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("ground_all")
    env = {"MODELS": ",".join(["anatomy", *MEMBERS, "ground_all"]), "PRESET": "small", "N_STUDIES": "1", "BODY": "chest",
           "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    yield from start_server(base, env, {"model_dir": base / "model", "skip_trainers": "true"})
    shutil.rmtree(base, ignore_errors=True)


def _voxels(box):
    lo, hi = np.asarray(box[0]), np.asarray(box[1])
    return lo, hi + 1


def _box_iou(a, b):
    (alo, ahi), (blo, bhi) = _voxels(a), _voxels(b)
    inter = np.prod(np.clip(np.minimum(ahi, bhi) - np.maximum(alo, blo), 0, None))
    return inter / (np.prod(ahi - alo) + np.prod(bhi - blo) - inter)


def test_ground_all_answers_side_by_side_through_the_client(server, tmp_path):
    from monailabel.client import MONAILabelClient

    client = MONAILabelClient(server.url, tmpdir=str(tmp_path))
    info = client.info()
    assert info["models"]["ground_all"]["members"] == MEMBERS and info["models"]["ground_all"]["config"]["report"] == ""
    label_file, params = client.infer("ground_all", IMAGE, {})  # the report: the study's stored one

    report = read_report(server.studies, IMAGE)
    assert params["members"] == MEMBERS and params["failed"] == {}
    answers = {name: GroundingResult.model_validate(g) for name, g in params["models"].items()}
    assert [answers[m].model.task_type for m in MEMBERS] == [TaskType.LESION_GROUNDING, TaskType.PHRASE_GROUNDING, TaskType.REGION_REPORT]
    assert answers["reg2rg"].region_reports  # the report generator's answer travels beside the grounders'
    for g in answers.values():
        assert all(report[slice(*f.sentence.span)] == f.sentence.text for f in g.findings if f.sentence)

    # every finding of a grounding model appears in exactly one agreement entry, or that model's reason does
    entries = params["agreement"]
    for e in entries:  # the side-by-side table (shown with -s)
        print(f"{e['id']:>4} | {(e['sentence'] or {}).get('text', '')[:60]:60} | {', '.join(e['models']) or '-':24} | "
              f"{e['mean_iou'] if e['mean_iou'] is not None else '-'} | missing: {', '.join(e['missing']) or '-'}")
    for name in ("gleve", "medgrounder"):
        grounded = {f.id for f in answers[name].findings if f.grounded}
        listed = [e["models"][name]["finding_id"] for e in entries if name in e["models"]]
        assert sorted(listed) == sorted(grounded)
        for e in entries:
            if name not in e["models"]:
                own = [f.reason for f in answers[name].findings if not f.grounded and f.sentence and f.sentence.index == e["sentence"]["index"]]
                assert e["missing"][name] == (own[0] if own else "no finding for this sentence")
    for e in entries:  # box IoU between the models' own boxes, recomputed
        for pair in e["iou"]:
            a, b = (answers[m].finding(e["models"][m]["finding_id"]) for m in pair["models"])
            if pair["measure"] == "box":
                assert pair["iou"] == pytest.approx(_box_iou(a.boxes[0].voxel, b.boxes[0].voxel), abs=1e-3)

    # the label map: one value per entry some model found, named as label_names says
    found = [e for e in entries if e["models"]]
    values = sorted(int(v) for v in np.unique(sitk.GetArrayFromImage(sitk.ReadImage(label_file))) if v)
    assert sorted(params["label_names"].values()) == values and len(values) <= len(found)
    assert all(name.split(" — ")[0] in {e["id"] for e in found} for name in params["label_names"])
    assert GroundingResult.model_validate(params["grounding"]).label_names() == params["label_names"]
