"""``medgrounder_cxr``: MedGrounder on 2D radiographs. The app's guard lets 2D images through for
this task only; answers are 2D boxes in pixels and mm with a 2D label map on the radiograph's
grid; (slow) the bundled 2D checkpoint abstains on negations and grounds a bilateral finding twice."""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import torch
from fastapi import HTTPException

from lib.data.studies import generate_dataset, image_path
from lib.data.synthetic.radiograph import write_radiograph_studies
from lib.infers.medgrounder_cxr import MedGrounderCXRInfer
from lib.metrics.boxes import box_voxel_to_world
from lib.networks.medgrounder import MedGrounder, MedGrounderConfig
from lib.reports import parse_report

_APP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "apps", "radground")
HASH = {"backend": "hash", "dim": 32}
SIZE = 32
REPORT = "FINDINGS:\nThe heart is enlarged. No pneumothorax.\nIMPRESSION: Cardiomegaly."

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("mg_cxr")
    ct = cxr = str(base / "studies")  # one datastore: the CT and its radiograph
    generate_dataset(ct, [20002], preset="tiny", body="chest")
    (rid,) = write_radiograph_studies(ct, cxr, ["chest_20002"])
    torch.manual_seed(0)
    net = MedGrounder(MedGrounderConfig.tiny(spatial_dims=2, in_channels=1, text_encoder=HASH, image_size=SIZE, num_queries=4))
    net.conf_head.bias.data.fill_(8.0)  # every query "groundable"
    path = str(base / "medgrounder_cxr.pt")
    torch.save({"model": net.state_dict(), "threshold": 0.5}, path)
    task = MedGrounderCXRInfer(path=[path], network=net, image_size=SIZE, iso_mm=6.0)
    return task, ct, cxr, rid, path


def test_radiograph_answer_is_2d_boxes_on_the_radiograph_grid(setup):
    task, _, cxr, rid, _ = setup
    req = {"image": image_path(cxr, rid), "parsed_report": parse_report(REPORT).model_dump(), "device": "cpu", "model": "medgrounder_cxr", "wbf": False}
    f, r = task(req)
    img = nib.load(image_path(cxr, rid))
    label = np.asarray(nib.load(f).dataobj)
    assert img.ndim == 2 and label.shape == img.shape
    assert np.allclose(nib.load(f).affine[:2, [0, 1, 3]], img.affine[:2, [0, 1, 3]], atol=1e-4)
    boxes = [b for s in r["sentences"] for b in s["boxes"]]
    assert len(boxes) == r["n_boxes"] == 4 * len(parse_report(REPORT).sentences)
    for b in boxes:
        (lo, hi), (mlo, mhi) = b["box_vox"], b["box_mm"]
        assert len(lo) == len(hi) == len(mlo) == len(mhi) == 2
        assert all(0 <= a <= z < n for a, z, n in zip(lo, hi, img.shape))
        assert np.allclose(box_voxel_to_world(np.array(lo + [v + 1 for v in hi], float), img.affine), mlo + mhi, atol=0.01)
    assert set(np.unique(label)) - {0} <= {b["label"] for b in boxes} and label.any()
    # the shared schema carries the same boxes, 2D in the radiograph's plane
    assert r.get("grounding_error") is None and r["grounding"] is not None
    schema_boxes = [b for f in r["grounding"]["findings"] for b in f["boxes"]]
    assert len(schema_boxes) == len(boxes)
    assert all(b["coordinate_system"] == "image" and len(b["voxel"][0]) == len(b["mm"][1]) == 2 for b in schema_boxes)
    # the schema's mm (recomputed from the label file's header) agree with the task's own box_mm
    by_vox = {tuple(map(tuple, b["box_vox"])): b["box_mm"] for b in boxes}
    assert all(np.allclose(b["mm"], by_vox[tuple(map(tuple, b["voxel"]))], atol=0.01) for b in schema_boxes)
    assert r["grounding"]["image"]["shape"] == list(img.shape) and r["grounding"]["coordinate_system"] == "image"


def test_the_guard_takes_2d_for_the_radiograph_task_only(setup, tmp_path):
    from lib.data.validation import inspect_volume
    from lib.errors import InvalidImageError
    from main import RadGroundApp

    _, ct, cxr, rid, path = setup
    assert inspect_volume(image_path(cxr, rid), dims=2).shape == nib.load(image_path(cxr, rid)).shape
    with pytest.raises(InvalidImageError, match="3D CT"):
        inspect_volume(image_path(cxr, rid))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    torch.save(torch.load(path), model_dir / "medgrounder_cxr.pt")  # a task without weights is not offered
    app = RadGroundApp(_APP_DIR, ct, {"models": "medgrounder,medgrounder_cxr", "model_dir": str(model_dir), "skip_trainers": "true"})
    # a CT to the radiograph task, a radiograph to the CT task: 422 with a readable reason, before any model runs
    with pytest.raises(HTTPException) as e:
        app.infer({"model": "medgrounder_cxr", "image": "chest_20002", "report": REPORT, "device": "cpu"})
    assert e.value.status_code == 422 and "2D image (a radiograph)" in e.value.detail
    with pytest.raises(HTTPException) as e:
        app.infer({"model": "medgrounder", "image": rid, "report": REPORT, "device": "cpu"})
    assert e.value.status_code == 422 and "3D CT volume" in e.value.detail


@pytest.mark.slow
def test_bundled_radiograph_checkpoint_negations_and_bilateral_findings(tmp_path):
    """The shipped 2D checkpoint on the radiograph of a held-out study with bilateral effusions:
    negations / normal statements get no box, the bilateral effusions two, one on each side, and
    "Bilateral lower lobe opacities." exactly two, one centred in each lung's lower zone (the CT's
    zones projected onto the radiograph, as the trainer projects every target box)."""
    from lib.configs.medgrounder_cxr import MedgrounderCxr
    from lib.data.grounding_targets import AnatomyBoxes
    from lib.data.studies import organ_path
    from lib.data.synthetic.radiograph import beam_axis, project_boxes

    cfg = MedgrounderCxr()
    cfg.init("medgrounder_cxr", str(tmp_path), {}, None)
    if not os.path.exists(cfg.path[0]):
        pytest.skip("no bundled medgrounder_cxr checkpoint")
    task = cfg.infer()["medgrounder_cxr"]
    studies = str(tmp_path / "studies")
    generate_dataset(studies, [20031], preset="small", body="chest")
    (rid,) = write_radiograph_studies(studies, studies, ["chest_20031"])
    report = "FINDINGS:\nNo pneumothorax. The pancreas is unremarkable. Bilateral lower lobe opacities. Small bilateral pleural effusions."
    req = {"image": image_path(studies, rid), "parsed_report": parse_report(report).model_dump(), "device": "cpu", "model": "medgrounder_cxr"}
    _, r = task(req)
    by_text = {s["text"]: s["boxes"] for s in r["sentences"]}
    assert not by_text["No pneumothorax."] and not by_text["The pancreas is unremarkable."], r["sentences"]
    eff = by_text["Small bilateral pleural effusions."]
    assert len(eff) == 2, r["sentences"]
    mid = nib.load(image_path(studies, rid)).shape[0] / 2
    xs = sorted((b["box_vox"][0][0] + b["box_vox"][1][0]) / 2 for b in eff)
    assert xs[0] < mid < xs[1]  # one box on each side of the midline
    opac = by_text["Bilateral lower lobe opacities."]
    assert len(opac) == 2, r["sentences"]
    anat = AnatomyBoxes(np.asarray(nib.load(organ_path(studies, "chest_20031")).dataobj))
    axis = beam_axis(nib.load(image_path(studies, "chest_20031")).affine)
    centre = lambda b: [(lo + hi + 1) / 2 for lo, hi in zip(*b["box_vox"])]  # noqa: E731  (pixel corner frame)
    for side in ("right", "left"):
        zone = project_boxes(np.asarray(anat.box(f"{side} lower lung zone"), float)[None], axis)[0]
        inside = [b for b in opac if all(zone[i] <= c <= zone[i + 2] for i, c in enumerate(centre(b)))]
        assert len(inside) == 1, (side, zone.tolist(), opac)
