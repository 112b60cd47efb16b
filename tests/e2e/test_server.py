"""End-to-end: the README's server, driven by MONAI Label's own client as a viewer would."""
from __future__ import annotations

import gzip
import json
import os
import time

import nibabel as nib
import numpy as np
import pytest
import requests
from monailabel.client.client import MONAILabelClientException

from .conftest import wait_for_training

pytestmark = pytest.mark.slow


def _image_ids(client) -> list[str]:
    return sorted(client.datastore()["objects"].keys())


def test_info_lists_the_baseline_task(client):
    info = client.info()
    assert "lesion_baseline" in info["models"]
    assert info["models"]["lesion_baseline"]["labels"] == {"lesion": 1}
    assert "lesion_baseline" in info["trainers"]
    assert {"random", "first"} <= set(info["strategies"])


def test_datastore_holds_labelled_and_report_only_studies(client, server):
    objects = client.datastore()["objects"]
    assert len(objects) == 12  # 6 seeds x (abdomen, chest)
    assert sum(k.startswith("chest_") for k in objects) == 6
    labelled = [k for k, v in objects.items() if "final" in v.get("labels", {})]
    assert 0 < len(labelled) < 12, "report-only studies must have no final label"
    assert all("regions" in v.get("labels", {}) for k, v in objects.items() if k.startswith("chest_"))
    for image_id in objects:
        assert os.path.isfile(os.path.join(server.studies, "reports", f"{image_id}.txt"))


def test_infer_returns_a_label_on_the_image_grid(client, server):
    image_id = _image_ids(client)[0]
    label_file, params = client.infer("lesion_baseline", image_id, {})
    image = nib.load(os.path.join(server.studies, f"{image_id}.nii.gz"))
    label = nib.load(label_file)
    assert label.shape == image.shape
    np.testing.assert_allclose(label.affine, image.affine, atol=1e-3)
    values = set(np.unique(np.asarray(label.dataobj)).tolist())
    assert values <= {0, 1}
    assert params["label_names"] == {"lesion": 1}
    assert params["model"]["version"] not in ("", "untrained")


def test_infer_finds_lesions_in_studies_that_have_them(client, server):
    """The bundled checkpoint is a real model: it finds a share of the true lesions (000's lesion
    recall, pooled over the served studies) without painting the volume (an untrained network
    scores LR ~0 or labels everything)."""
    from lib.metrics.lesion import aggregate, match_lesions

    scores, fractions = [], []
    for image_id in [i for i in _image_ids(client) if i.startswith("synth_")]:  # abdominal lesions (chest studies hold chest findings)
        truth = nib.load(os.path.join(server.studies, "truth", f"{image_id}_lesions.nii.gz"))
        gt = np.asarray(truth.dataobj)
        label_file, _ = client.infer("lesion_baseline", image_id, {})
        pred = np.asarray(nib.load(label_file).dataobj) > 0
        fractions.append(pred.mean())
        scores.append(match_lesions(pred, gt, truth.header.get_zooms()[:3], gt_instances="labels"))
    agg = aggregate(scores)
    assert agg["n_gt"] > 0
    assert agg["LR_micro"] >= 0.25, agg
    assert max(fractions) < 0.01


def test_slicer_style_request_gets_nrrd_uint8(client, server):
    image_id = _image_ids(client)[0]
    label_file, params = client.infer("lesion_baseline", image_id, {"result_extension": ".nrrd", "result_dtype": "uint8"})
    assert label_file.endswith(".nrrd")
    import SimpleITK as sitk

    lab = sitk.ReadImage(label_file)
    img = sitk.ReadImage(os.path.join(server.studies, f"{image_id}.nii.gz"))
    assert lab.GetSize() == img.GetSize()
    assert lab.GetPixelIDTypeAsString() == "8-bit unsigned integer"


def _post_infer(server, model="lesion_baseline", image="", params=None, files=None):
    return requests.post(
        f"{server.url}/infer/{model}", params={"image": image, "output": "json"},
        data={"params": json.dumps(params or {})}, files=files, timeout=300,
    )


@pytest.mark.parametrize(
    "payload",
    [b"not a nifti at all", gzip.compress(b"\x5c\x01\x00\x00" + b"\x00" * 100)],
    ids=["garbage", "truncated-header"],
)
def test_corrupt_nifti_upload_gets_a_clear_error(server, payload):
    r = _post_infer(server, files={"file": ("broken.nii.gz", payload, "application/octet-stream")})
    assert r.status_code == 422
    assert "could not be read" in r.json()["detail"]
    assert "Traceback" not in r.text
    assert server.alive()


def test_truncated_volume_data_gets_a_clear_error(client, server):
    image_id = _image_ids(client)[0]
    with open(os.path.join(server.studies, f"{image_id}.nii.gz"), "rb") as f:
        raw = gzip.decompress(f.read())
    broken = gzip.compress(raw[: len(raw) // 3])  # valid header, a third of the voxels
    r = _post_infer(server, files={"file": ("cut.nii.gz", broken, "application/octet-stream")})
    assert r.status_code == 422, r.text
    assert "Traceback" not in r.text
    assert server.alive()


@pytest.mark.parametrize(
    "report, fragment",
    [("", "empty"), ("   \n\t ", "empty"), (("qwv zzkr plo mmn! " * 600)[:10000], "no recognisable radiology content")],
    ids=["empty", "whitespace", "nonsense-10k"],
)
def test_bad_report_text_gets_a_clear_error(client, server, report, fragment):
    image_id = _image_ids(client)[0]
    with pytest.raises(MONAILabelClientException) as e:
        client.infer("lesion_baseline", image_id, {"report": report})
    assert "Status: 422" in e.value.msg  # the client puts the HTTP status in its message
    assert fragment in e.value.msg.lower()
    assert server.alive()


def test_unknown_model_and_hostile_image_ids(client, server):
    image_id = _image_ids(client)[0]
    r = _post_infer(server, model="no_such_model", image=image_id)
    assert r.status_code == 404 and "unknown model" in r.json()["detail"]
    for hostile in ("../../../../etc/passwd", "/etc/passwd", "nope"):
        r = _post_infer(server, image=hostile)
        assert r.status_code == 404, (hostile, r.text)
    assert server.alive()


def test_server_keeps_serving_after_bad_requests(client):
    image_id = _image_ids(client)[-1]
    label_file, params = client.infer("lesion_baseline", image_id, {})
    assert os.path.exists(label_file) and params["label_names"] == {"lesion": 1}


def test_train_one_epoch_writes_a_checkpoint(client, server):
    published = os.path.join(server.model_dir, "lesion_baseline.pt")
    assert not os.path.exists(published)
    client.train_start("lesion_baseline", {"max_epochs": 1, "val_split": 0.5, "dataset": "Dataset", "train_batch_size": 1})
    status = wait_for_training(client, 600)
    assert status.get("status") == "DONE", status
    assert os.path.exists(published)
    import torch

    state = torch.load(published, map_location="cpu")
    state = state.get("model", state)  # MONAI Label publishes the bare state dict
    assert any(k.endswith("conv.weight") for k in state) and all(torch.isfinite(v).all() for v in state.values())
    stats = json.load(open(os.path.join(server.model_dir, "lesion_baseline", "train_stats.json")))
    assert stats["total_epochs"] == 1
    # The next inference uses the newly trained weights (version = checkpoint hash).
    _, params = client.infer("lesion_baseline", _image_ids(client)[0], {})
    assert params["model"]["file"] == "lesion_baseline.pt"


def test_anatomy_names_the_organs_and_caches_per_image(client, server):
    image_id = [i for i in _image_ids(client) if i.startswith("synth_")][1]
    # grounding tasks (gleve) may have asked for this study's anatomy already: start from an empty cache
    cache = os.path.join(server.model_dir, "cache", "anatomy")
    for name in os.listdir(cache) if os.path.isdir(cache) else []:
        os.remove(os.path.join(cache, name))
    t0 = time.time()
    f1, p1 = client.infer("anatomy", image_id, {})
    first = time.time() - t0
    t0 = time.time()
    f2, p2 = client.infer("anatomy", image_id, {})
    second = time.time() - t0
    assert p1["cache"] == "miss" and p2["cache"] == "hit"
    assert p1["label_names"]["liver"] == 1 and p2["label_names"] == p1["label_names"]
    assert second < first
    label = np.asarray(nib.load(f2).dataobj)
    organs = np.asarray(nib.load(os.path.join(server.studies, "labels", "organs", f"{image_id}.nii.gz")).dataobj)
    assert label.shape == organs.shape
    from lib.metrics.segmentation import dice

    assert dice(label == 1, organs == 1) > 0.8  # the liver


def test_anatomy_segments_the_chest_regions(client, server):
    """A chest study: structures named for Slicer, and merged into Reg2RG regions they match the truth."""
    from lib.anatomy.labels import REGION_IDS, region_map
    from lib.metrics.segmentation import dice

    image_id = next(i for i in _image_ids(client) if i.startswith("chest_"))
    f, p = client.infer("anatomy", image_id, {})
    assert p["label_names"]["right lung"] == 9 and p["label_names"]["thyroid"] == 15
    regions = region_map(np.asarray(nib.load(f).dataobj))
    truth = np.asarray(nib.load(os.path.join(server.studies, "labels", "regions", f"{image_id}.nii.gz")).dataobj)
    assert regions.shape == truth.shape
    assert dice(regions == REGION_IDS["lung"], truth == REGION_IDS["lung"]) > 0.85
    assert dice(regions == REGION_IDS["heart"], truth == REGION_IDS["heart"]) > 0.75
