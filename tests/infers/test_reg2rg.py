"""The ``reg2rg`` infer task's contract: per-region text with the recognised area checked, a label map
of the regions described (on the input grid, named), region subsets, clear 422s for bad params.

The network is untrained (the contract does not depend on training); where the contract is about
what the model wrote, its ``generate`` is replaced by a scripted answer. What Reg2RG learns is
scored by scripts/evaluate_reg2rg.py.
"""
from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from lib.anatomy.labels import REGION_IDS, region_map
from lib.configs.reg2rg import Reg2rg
from lib.data.region_reports import REGION_NAMES, build_prompt, build_target
from lib.data.studies import generate_dataset, image_path, organ_path, read_truth
from lib.errors import InvalidParamsError
from lib.infers.reg2rg import Reg2RGInfer, requested_regions
from lib.networks.reg2rg import Reg2RG, Reg2RGConfig
from lib.networks.reg2rg.tokenizer import save_tokenizer_file, train_bpe_tokenizer

SMALL = dict(
    image_size=(16, 16, 8), patch_size=(8, 8, 4), vis_dim=32, vis_layers=1, vis_heads=2, vis_mlp=32, n_visual_tokens=4,
    perceiver_heads=2, mask_size=(16, 16, 8), mask_patch_size=(8, 8, 8), geo_dim=16, geo_heads=2, geo_mlp=16,
    lm_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2},
)
SID = "chest_20001"


class GroundTruthAnatomy:
    """Stands in for the anatomy task: answers with the study's own structure map (a copy, as the task does)."""

    def __init__(self, studies):
        self.studies, self.calls = studies, 0

    def __call__(self, request):
        self.calls += 1
        out = request["image"] + ".anatomy.nii.gz"
        shutil.copyfile(organ_path(self.studies, SID), out)
        return out, {"cache": "miss", "backend": "test", "model": {"version": "gt"}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("reg2rg")
    studies = str(base / "studies")
    generate_dataset(studies, [20001], preset="tiny", body="chest")
    rep = read_truth(studies, SID)["region_reports"]
    tok = train_bpe_tokenizer([build_target(list(rep), rep), build_prompt(10), build_prompt(0, use_local=False)] * 3, vocab_size=300)
    tok_file = str(base / "tok.json")
    save_tokenizer_file(tok, tok_file)
    torch.manual_seed(0)
    net = Reg2RG(Reg2RGConfig(**SMALL), tok)
    ckpt = str(base / "reg2rg.pt")
    torch.save({"model": net.checkpoint_state_dict()}, ckpt)
    anatomy = GroundTruthAnatomy(studies)
    task = Reg2RGInfer(path=[ckpt], network=net, anatomy_task=anatomy)
    return task, studies, tok, tok_file, anatomy


def _run(task, studies, **params):
    return task({"image": image_path(studies, SID), "model": "reg2rg", "device": "cpu", "max_new_tokens": 8, **params})


def _script(task, tok, monkeypatch, text):
    texts = iter([text] if isinstance(text, str) else text)
    monkeypatch.setattr(task._get_network("cpu", {}), "generate_from", lambda *a, **k: tok(next(texts), add_special_tokens=False)["input_ids"])


def test_every_present_region_answered_and_mapped_on_the_input_grid(setup):
    task, studies, _, _, anatomy = setup
    f, r = _run(task, studies)
    label = np.asarray(nib.load(f).dataobj)
    assert label.shape == nib.load(image_path(studies, SID)).shape
    want = region_map(np.asarray(nib.load(organ_path(studies, SID)).dataobj))
    present = [n for n in REGION_NAMES if (want == REGION_IDS[n]).sum() >= 8]
    assert [x["region"] for x in r["regions"]] == present and [x["index"] for x in r["regions"]] == list(range(len(present)))
    assert [x["label"] for x in r["regions"]] == [REGION_IDS[n] for n in present]
    assert r["label_names"] == {n: REGION_IDS[n] for n in present}
    assert np.array_equal(label, np.where(np.isin(want, [REGION_IDS[n] for n in present]), want, 0))
    for x in r["regions"]:
        assert set(x) >= {"text", "recognised_area", "matched"} and isinstance(x["matched"], bool)
    assert r["model"]["version"] != "untrained" and anatomy.calls >= 1


def test_recognised_area_is_checked_and_the_prefix_stripped(setup, monkeypatch):
    task, studies, tok, _, _ = setup
    _script(task, tok, monkeypatch, "The region 0 is heart: Mild cardiomegaly. The region 1 is pleura: No pleural effusion.")
    f, r = _run(task, studies, regions=["lung", "heart"])
    # a subset is given in canonical order: region 0 = heart, region 1 = lung
    (heart, lung) = r["regions"]
    assert (heart["region"], heart["recognised_area"], heart["matched"], heart["text"]) == ("heart", "heart", True, "Mild cardiomegaly.")
    assert (lung["region"], lung["recognised_area"], lung["matched"]) == ("lung", "pleura", False)
    assert lung["text"] == "No pleural effusion." and "The region" not in r["report"]
    assert r["n_matched"] == 1
    assert set(np.unique(np.asarray(nib.load(f).dataobj))) == {0, REGION_IDS["heart"], REGION_IDS["lung"]}
    assert r["label_names"] == {"heart": REGION_IDS["heart"], "lung": REGION_IDS["lung"]}


def test_one_prompt_per_region_variant(setup, monkeypatch, tmp_path):
    """With ``joint_regions`` off (the tiny variant) each region is its own prompt and answer."""
    _, studies, tok, _, anatomy = setup
    torch.manual_seed(0)
    net = Reg2RG(Reg2RGConfig(**SMALL, joint_regions=False), tok)
    ckpt = str(tmp_path / "r.pt")
    torch.save({"model": net.checkpoint_state_dict()}, ckpt)
    task = Reg2RGInfer(path=[ckpt], network=net, anatomy_task=anatomy)
    _script(task, tok, monkeypatch, ["The region 0 is heart: Mild cardiomegaly.", "The region 0 is lung: The lungs are clear.", "The region 0 is bone: No acute fracture."])
    _, r = _run(task, studies, regions="lung,heart,thyroid")
    got = [(x["index"], x["region"], x["recognised_area"], x["matched"], x["text"]) for x in r["regions"]]
    assert got == [
        (0, "heart", "heart", True, "Mild cardiomegaly."),
        (1, "lung", "lung", True, "The lungs are clear."),
        (2, "thyroid", "bone", False, "No acute fracture."),
    ]
    assert r["n_matched"] == 2


@pytest.mark.parametrize(
    "params, message",
    [({"regions": ["lung", "spleen"]}, "unknown region"), ({"regions": [3]}, "list of region names"), ({"max_new_tokens": "many"}, "integer"), ({"max_new_tokens": 0}, "between")],
)
def test_bad_params_are_422(setup, params, message):
    task, studies, *_ = setup
    with pytest.raises(InvalidParamsError, match=message):
        _run(task, studies, **params)


def test_requested_regions():
    assert requested_regions(None) == list(REGION_NAMES) and requested_regions("") == list(REGION_NAMES)
    assert requested_regions("Heart, lung") == ["heart", "lung"]
    assert requested_regions(["trachea  and bronchi"]) == ["trachea and bronchi"]


def test_task_config_offers_the_task_only_with_a_tokenizer(setup, tmp_path):
    *_, tok_file, _ = setup
    cfg = Reg2rg()
    cfg.init("reg2rg", str(tmp_path), {"reg2rg_tokenizer": tok_file}, None)
    assert set(cfg.infer()) == {"reg2rg"} and cfg.trainer() is not None
    assert cfg.network.config.use_geometry and cfg.path[0].endswith("pretrained_reg2rg.pt")
    glb = Reg2rg()
    glb.init("reg2rg", str(tmp_path), {"reg2rg_tokenizer": tok_file, "reg2rg_features": "glb"}, None)
    assert not glb.network.config.uses_local and glb.path[1].endswith("reg2rg_glb.pt")
    missing = Reg2rg()
    missing.init("reg2rg", str(tmp_path), {"reg2rg_tokenizer": str(tmp_path / "none.json")}, None)
    assert missing.infer() == {} and missing.trainer() is None
    with pytest.raises(ValueError):
        Reg2rg().init("reg2rg", str(tmp_path), {"reg2rg_tokenizer": tok_file, "reg2rg_features": "xyz"}, None)


def test_the_crop_background_follows_the_checkpoint(setup, tmp_path):
    """A checkpoint trained with another texture background (saved in its config) is served with it;
    one without the key gets the network's (the paper's -1024 HU)."""
    task, _, _, _, anatomy = setup
    net = task._get_network("cpu", {})
    assert task.texture_outside_hu(net.config) == -1024.0
    ckpt = str(tmp_path / "grey.pt")
    torch.save({"model": net.checkpoint_state_dict(), "config": {**net.config.to_dict(), "texture_outside_hu": -400.0}}, ckpt)
    grey = Reg2RGInfer(path=[ckpt], network=net, anatomy_task=anatomy)
    assert grey.texture_outside_hu(net.config) == -400.0


class HoledAnatomy(GroundTruthAnatomy):
    """The study's structure map with a cube cut out of the lung (background), as the anatomy task leaves
    a lung mass out of its lung mask."""

    def __init__(self, studies):
        super().__init__(studies)
        img = nib.load(organ_path(studies, SID))
        organs = np.asarray(img.dataobj).copy()
        lung = region_map(organs) == REGION_IDS["lung"]
        inner = lung.copy()
        for axis in range(3):
            for shift in (-3, 3):
                inner &= np.roll(lung, shift, axis=axis)
        c = np.argwhere(inner)[len(np.argwhere(inner)) // 2]
        self.hole = tuple(slice(int(v) - 1, int(v) + 2) for v in c)
        organs[self.hole] = 0
        self.path = str(organ_path(studies, SID)).replace(".nii.gz", "_holed.nii.gz")
        nib.save(nib.Nifti1Image(organs, img.affine, img.header), self.path)

    def __call__(self, request):
        self.calls += 1
        out = request["image"] + ".anatomy.nii.gz"
        shutil.copyfile(self.path, out)
        return out, {"cache": "miss", "backend": "test", "model": {"version": "holed"}}


def test_region_holes_are_filled_when_the_checkpoint_was_trained_so(setup, tmp_path):
    """A checkpoint trained on hole-filled masks (``fill_region_holes`` in its config) is served with the
    lung's holes given back to the lung, in the label map too; one without the key is not."""
    task, studies, _, _, _ = setup
    net = task._get_network("cpu", {})
    holed = HoledAnatomy(studies)
    ckpt = str(tmp_path / "filled.pt")
    torch.save({"model": net.checkpoint_state_dict(), "config": {**net.config.to_dict(), "fill_region_holes": True}}, ckpt)
    filled = Reg2RGInfer(path=[ckpt], network=net, anatomy_task=holed)
    plain = Reg2RGInfer(path=task.path, network=net, anatomy_task=holed)
    assert filled.fill_region_holes() and not plain.fill_region_holes()
    f, _ = _run(filled, studies)
    assert (np.asarray(nib.load(f).dataobj)[holed.hole] == REGION_IDS["lung"]).all()
    f, _ = _run(plain, studies)
    assert (np.asarray(nib.load(f).dataobj)[holed.hole] == 0).all()
