"""The ``segdetexplain`` infer task's contract: per-slice masks assembled on the input grid, boxes
per slice in voxels, appearance text, the shared schema, request parameters checked.

An untrained tiny model is used with ``force_routing`` so every slice gets a mask and boxes; what
the model learns is scored by scripts/evaluate_segdetexplain.py and tests/e2e/test_segdetexplain.py.
"""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from lib.data.studies import generate_dataset, image_path
from lib.errors import InvalidParamsError, ModelNotReadyError
from lib.infers.segdetexplain import SegDetExplainInfer, parse_query, parse_slices, to_source_grid
from lib.networks.segdetexplain import SegDetExplain, SegDetExplainConfig
from lib.trainers.segdetexplain import checkpoint_dict
from lib.networks.vlm.tokenizer import BASE_VOCABULARY

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("sde_infer")
    studies = str(base / "studies")
    generate_dataset(studies, [20001], preset="tiny")
    torch.manual_seed(0)
    cfg = SegDetExplainConfig.tiny(max_new_tokens=8, image_size=64)
    model = SegDetExplain.build(cfg, corpus=BASE_VOCABULARY)
    path = str(base / "segdetexplain.pt")
    torch.save(checkpoint_dict(model, 1, 0.0), path)
    return SegDetExplainInfer(path=[path]), studies


def _run(infer, studies, **params):
    return infer({"image": image_path(studies, "synth_20001"), "device": "cpu", "model": "segdetexplain", **params})


def test_forced_masks_and_boxes_land_on_the_asked_slices_of_the_input_grid(setup):
    task, studies = setup
    f, r = _run(task, studies, query="liver", slices="10-11", force_routing=True, closer=True)
    img = nib.load(image_path(studies, "synth_20001"))
    label = np.asarray(nib.load(f).dataobj)
    assert label.shape == img.shape
    assert [s["slice"] for s in r["slices"]] == [10, 11] and r["target"] == "liver"
    assert set(np.nonzero(label.reshape(-1, label.shape[2]).any(0))[0]) <= {10, 11}  # nothing outside the range
    assert r["n_voxels"] == int((label == 1).sum())
    assert r["label_names"] == {"liver": 1}
    for s in r["slices"]:
        assert set(s["forced"]) <= {"[seg]", "[det]"} and s["boxes_2d"]
        for i1, j1, i2, j2, score in s["boxes_2d"]:
            assert 0 <= i1 < i2 <= img.shape[0] and 0 <= j1 < j2 <= img.shape[1] and 0 <= score <= 1
    assert len(r["boxes_vox"]) == sum(len(s["boxes_2d"]) for s in r["slices"])
    for lo, hi in r["boxes_vox"]:
        assert lo[2] == hi[2] and lo[2] in (10, 11)
    g = r["grounding"]
    assert g is not None and g["findings"][0]["kind"] == "query" and len(g["findings"][0]["boxes"]) == len(r["boxes_vox"])


def test_closer_look_switch(setup):
    task, studies = setup
    _, on = _run(task, studies, query="spleen", slices=12, force_routing=True, closer=True)
    _, off = _run(task, studies, query="spleen", slices=12, force_routing=True, closer=False)
    assert off["closer"] is False and "closer_roi" not in off["slices"][0]
    if on["slices"][0]["n_pixels"]:
        assert "closer_roi" in on["slices"][0]


def test_bad_requests_are_4xx(setup):
    task, studies = setup
    for params in ({"query": ""}, {"query": "x" * 500}, {"query": "liver", "task": "paint"}, {"query": "liver", "slices": "5-999"}, {"query": "liver", "slices": "a-b"}, {"query": "liver", "max_new_tokens": "many"}):
        with pytest.raises(InvalidParamsError):
            _run(task, studies, **params)


def test_no_checkpoint_is_model_not_ready(tmp_path):
    task = SegDetExplainInfer(path=[str(tmp_path / "missing.pt")])
    assert not task.is_valid()
    with pytest.raises(ModelNotReadyError):
        task.model()


def test_query_and_slice_parsing():
    assert parse_query("The Left Kidney?") == ("The Left Kidney?", "left kidney")
    assert parse_query("where is the tumour")[1] is None
    with pytest.raises(InvalidParamsError):
        parse_query("liver\x07")
    assert parse_slices("", 4) == [0, 1, 2, 3] and parse_slices([1, 2], 4) == [1, 2] and parse_slices("3", 4) == [3]
    with pytest.raises(InvalidParamsError):
        parse_slices([3, 1], 4)


def test_orientation_round_trip():
    lab = np.zeros((4, 5, 6), np.uint8)
    lab[1, 2, 3] = 1
    ras = np.diag([1.0, 1.0, 1.0, 1.0])  # RAS-ordered input: LPS array has i and j flipped
    back = to_source_grid(lab, ras)
    assert back.shape == (4, 5, 6) and back[2, 2, 3] == 1
    assert np.array_equal(to_source_grid(lab, np.diag([-1.0, -1.0, 1.0, 1.0])), lab)


@pytest.mark.slow
def test_bundled_model_states_the_position_of_its_own_mask():
    """The bundled checkpoint on held-out slices: the position the answer states (right / central /
    left, anterior / posterior) is the one measured on the mask it returns, and the masks overlap
    the truth."""
    from lib.configs.variants import bundled_checkpoint
    from lib.data.appearance import mask_position, stated_position
    from lib.data.slice_grounding import DET, QUESTIONS, SEG, synthetic_samples
    from lib.data.studies import split_seeds
    from lib.metrics.segmentation import dice

    path = bundled_checkpoint("segdetexplain.pt")
    if not __import__("os").path.exists(path):
        pytest.skip("no bundled segdetexplain checkpoint")
    model = SegDetExplainInfer(path=[path]).model()
    xs = [x for x in synthetic_samples(split_seeds("test", 1), "small") if x.kind == "organ" and x.mask.any()][::3]
    agree, dices = [], []
    for x in xs:
        out = model.predict(x.image, QUESTIONS["segdet"].format(name=x.target), x.target, want=(SEG, DET))
        mask = out["prob"] >= 0.5
        dices.append(dice(mask, x.mask))
        said = stated_position(out["text"])
        if mask.any():
            agree.append(said == mask_position(mask, x.image))
    assert len(agree) >= 10
    assert np.mean(agree) >= 0.6, (np.mean(agree), len(agree))
    assert np.mean(dices) >= 0.5
