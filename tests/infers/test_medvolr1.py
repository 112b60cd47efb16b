"""The medvolr1 infer task on a small synthetic study: label on the input grid, answer JSON, the
shared schema, and clear errors (bad query, malformed policy output) with no label written."""
import glob
import os
import tempfile

import nibabel as nib
import numpy as np
import pytest
import torch

from lib.errors import InvalidParamsError, RadgroundError
from lib.networks.medvolr1.answer import PolicyFormatError, format_response
from lib.networks.medvolr1.checkpoint import system_checkpoint
from lib.networks.medvolr1.policy import MedVolPolicy
from lib.networks.medvolr1.propagator import SlicePropagator
from lib.networks.vlm import VLMConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lib.data.studies import generate_dataset
    from lib.infers.medvolr1 import MedVolR1Infer

    root = tmp_path_factory.mktemp("mv")
    generate_dataset(str(root / "studies"), [5], preset="tiny", report_only_fraction=0.0)
    torch.manual_seed(0)
    ckpt = root / "medvolr1.pt"
    torch.save(system_checkpoint(MedVolPolicy.build(VLMConfig.tiny(), 16), SlicePropagator(), {"n_slices": 16, "image_size": 64}, "sft"), ckpt)
    task = MedVolR1Infer(path=[None, str(ckpt)])
    return task, str(root / "studies" / "synth_00005.nii.gz")


def labels_now():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "radground_label_*")))


def answer_with(monkeypatch, text):
    monkeypatch.setattr(MedVolPolicy, "decode", lambda self, ids: [text] * ids.shape[0])


def test_a_valid_answer_becomes_a_mask_on_the_input_grid(setup, monkeypatch):
    task, image = setup
    answer_with(monkeypatch, format_response("The query refers to the liver.", 9, [[10, 14, 40, 44]]))
    label_file, res = task({"image": image, "query": "the organ that secretes bile", "device": "cpu"})
    try:
        img = nib.load(image)
        lab = np.asarray(nib.load(label_file).dataobj)
        assert lab.shape == img.shape and set(np.unique(lab)) <= {0, 1}
        assert np.allclose(nib.load(label_file).affine, img.affine, atol=1e-4)
        assert res["key_slice"] == 9 and res["boxes_2d"] == [[10.0, 14.0, 40.0, 44.0]]
        z = res["key_slice_z"]
        assert 0 <= z < img.shape[2] and all(b[0][2] == b[1][2] == z for b in res["boxes_vox"])
        (lo, hi), = res["boxes_vox"]
        assert lo[0] == 10 and hi[0] == 39  # 64-pixel slice on a 64-voxel grid: same pixels
        assert res["think"] == "The query refers to the liver." and 0 < res["confidence"] <= 1 and res["decoding"] == "greedy"
        assert res["n_voxels"] == int(lab.sum())
        assert res["label_names"] == {"the organ that secretes bile": 1}
        g = res["grounding"]
        assert g is not None and g["findings"][0]["sentence"]["text"] == "the organ that secretes bile"
        assert g["findings"][0]["extra"]["key_slice"] == 9
        assert g["model"]["version"] != "untrained"
    finally:
        os.remove(label_file)


def test_malformed_policy_output_is_a_422_and_writes_nothing(setup, monkeypatch):
    task, image = setup
    answer_with(monkeypatch, '<think>x</think><answer>{"slice": 99, "bbox_2d_list": [[1,2,3,4]]}</answer>')
    before = labels_now()
    with pytest.raises(PolicyFormatError) as e:
        task({"image": image, "query": "the organ that stores bile", "device": "cpu"})
    assert e.value.status_code == 422 and "slice" in e.value.message
    assert labels_now() == before


def test_a_malformed_greedy_answer_falls_back_to_the_best_wellformed_sample(setup, monkeypatch):
    """Greedy malformed, one of the samples well-formed: that sample answers, and the answer says
    so; with ``fallback_samples`` 0 the same request is a 422."""
    task, image = setup
    bad = '<think>x</think><answer>{"slice": 99, "bbox_2d_list": [[1,2,3,4]]}</answer>'
    good = format_response("The query refers to the liver.", 7, [[12, 14, 40, 44]])
    monkeypatch.setattr(MedVolPolicy, "decode", lambda self, ids: [bad] if ids.shape[0] == 1 else [bad] + [good] * (ids.shape[0] - 1))
    label_file, res = task({"image": image, "query": "the organ that stores bile", "device": "cpu"})
    try:
        assert res["key_slice"] == 7 and res["response"] == good and res["n_voxels"] > 0
        assert res["decoding"].startswith("sampled: the greedy answer was malformed (slice")
    finally:
        os.remove(label_file)
    before = labels_now()
    with pytest.raises(PolicyFormatError):
        task({"image": image, "query": "the organ that stores bile", "device": "cpu", "fallback_samples": 0})
    with pytest.raises(InvalidParamsError, match="fallback_samples"):
        task({"image": image, "query": "the organ that stores bile", "device": "cpu", "fallback_samples": 99})
    assert labels_now() == before


@pytest.mark.parametrize("query", ["", "   ", None, 42, "x" * 301, "bad\x00query"])
def test_bad_queries_are_refused(setup, query):
    task, image = setup
    with pytest.raises(InvalidParamsError):
        task({"image": image, "query": query, "device": "cpu"})


def test_unreadable_image_is_a_request_error(setup, tmp_path):
    task, _ = setup
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(RadgroundError):
        task({"image": str(bad), "query": "the organ that stores bile", "device": "cpu"})


def test_the_answer_says_which_propagator_ran(setup, monkeypatch):
    task, image = setup
    answer_with(monkeypatch, format_response("x", 9, [[10, 14, 40, 44]]))
    label_file, res = task({"image": image, "query": "the organ that stores bile", "device": "cpu"})
    os.remove(label_file)
    assert res["propagator"]["name"] == "slice_propagator" and "medvolr1_medsam2" in res["propagator"]["reason"]


def medsam2_task(task, monkeypatch, build=None):
    from lib.infers.medvolr1 import MedVolR1Infer
    from lib.networks.medvolr1.medsam2 import MEDSAM2, MedSAM2Settings, PropagatorChoice
    from tests.networks.medvolr1.fake_sam2 import install_fake_sam2

    install_fake_sam2(monkeypatch, build)
    return MedVolR1Infer(path=task.path, propagator=PropagatorChoice(MEDSAM2, "sam2 imports and the checkpoint exists", MedSAM2Settings("MedSAM2_latest.pt", device="cpu")))


def test_medsam2_lifts_the_boxes_when_chosen(setup, monkeypatch):
    """With sam2's API (a stand-in here) MedSAM2 produces the mask: on the key slice, the box's voxels."""
    task, image = setup
    answer_with(monkeypatch, format_response("x", 9, [[10, 14, 40, 44]]))
    label_file, res = medsam2_task(task, monkeypatch)({"image": image, "query": "the organ that stores bile", "device": "cpu"})
    try:
        lab = np.asarray(nib.load(label_file).dataobj)
        assert res["propagator"] == {"name": "medsam2", "reason": "sam2 imports and the checkpoint exists"}
        z = res["key_slice_z"]
        (lo, hi), = res["boxes_vox"]
        assert lab[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, z].all()
        assert lab[:, :, z].sum() == (hi[0] - lo[0] + 1) * (hi[1] - lo[1] + 1) and res["n_voxels"] == int(lab.sum())
    finally:
        os.remove(label_file)


def test_a_medsam2_that_fails_to_build_falls_back_and_says_why(setup, monkeypatch):
    task, image = setup

    def broken(config, ckpt):
        raise RuntimeError("checkpoint does not match the config")

    answer_with(monkeypatch, format_response("x", 9, [[10, 14, 40, 44]]))
    label_file, res = medsam2_task(task, monkeypatch, broken)({"image": image, "query": "the organ that stores bile", "device": "cpu"})
    os.remove(label_file)
    assert res["propagator"]["name"] == "slice_propagator" and "could not be built (RuntimeError: checkpoint does not match" in res["propagator"]["reason"]


def test_a_medsam2_failure_on_one_request_falls_back_for_it(setup, monkeypatch):
    from tests.networks.medvolr1.fake_sam2 import FakeVideoPredictor

    task, image = setup

    class Failing(FakeVideoPredictor):
        def propagate_in_video(self, state, start_frame_idx=None, reverse=False):
            raise RuntimeError("CUDA out of memory")

    answer_with(monkeypatch, format_response("x", 9, [[10, 14, 40, 44]]))
    label_file, res = medsam2_task(task, monkeypatch, lambda c, k: Failing())({"image": image, "query": "the organ that stores bile", "device": "cpu"})
    os.remove(label_file)
    assert res["propagator"]["name"] == "slice_propagator" and "failed on this request (RuntimeError: CUDA out of memory)" in res["propagator"]["reason"]
