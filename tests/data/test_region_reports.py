"""Reg2RG inputs and RRA targets (004 §3.2, §3.4): crops, masks, prompts, prefixes, shuffling, parsing back."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.anatomy.labels import REGION_IDS
from lib.data.region_reports import (
    REGION_NAMES,
    align_to_regions,
    build_prompt,
    build_target,
    encode_example,
    fill_region_holes,
    normalise_hu,
    parse_generated,
    region_inputs,
    region_prefix,
    region_targets,
    shuffled,
    strip_prefixes,
)
from lib.data.synthetic import generate_study


@pytest.fixture(scope="module")
def chest():
    return generate_study(7, "tiny", body="chest")


def test_texture_crop_is_the_masked_region_box(chest):
    lab = chest.regions
    inputs = region_inputs(chest.image, lab, image_size=(16, 16, 8), mask_size=(8, 8, 4))
    present = [r for r in REGION_NAMES if (lab == REGION_IDS[r]).sum() >= 8]
    assert inputs.names == present and len(present) >= 8
    assert inputs.crops.shape == (len(present), 1, 16, 16, 8) and inputs.masks.shape == (len(present), 1, 8, 8, 4)
    assert inputs.global_volume.shape == (1, 1, 16, 16, 8)
    # at the crop's own size (no resampling) the texture is exactly mask ⊙ CT, -1024 HU outside, in the box
    heart = REGION_IDS["heart"]
    m = lab == heart
    idx = np.nonzero(m)
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in idx)
    size = tuple(s.stop - s.start for s in box)
    exact = region_inputs(chest.image, lab, image_size=size, mask_size=(8, 8, 4), regions=["heart"])
    want = normalise_hu(np.where(m[box], chest.image[box], -1024.0))
    assert np.allclose(exact.crops[0, 0].numpy(), want, atol=1e-5)
    assert exact.crops.min() >= normalise_hu(np.array(-2000.0)) - 1e-6
    # another background (Reg2RGConfig.texture_outside_hu) changes only the voxels outside the mask
    grey = region_inputs(chest.image, lab, image_size=size, mask_size=(8, 8, 4), regions=["heart"], outside_hu=-400.0)
    assert np.allclose(grey.crops[0, 0].numpy(), normalise_hu(np.where(m[box], chest.image[box], -400.0)), atol=1e-5)
    assert np.allclose(grey.crops[0, 0].numpy()[m[box]], want[m[box]]) and (~m[box]).any()


def test_geometry_mask_keeps_position_and_size(chest):
    """The mask is not cropped to the region: two regions give masks in different places, sizes preserved."""
    inputs = region_inputs(chest.image, chest.regions, image_size=(8, 8, 4), mask_size=(32, 32, 16), regions=["thyroid", "abdomen"])
    thy, abd = inputs.masks[0, 0], inputs.masks[1, 0]
    assert 0 <= float(thy.min()) and float(thy.max()) <= 1
    assert float(abd.sum()) > 5 * float(thy.sum()) > 0
    zc = lambda m: float((m.sum((0, 1)) * torch.arange(m.shape[2])).sum() / m.sum())
    assert zc(thy) > zc(abd)  # thyroid above the upper abdomen (z increases superiorly)


def test_absent_and_tiny_regions_are_left_out(chest):
    lab = chest.regions.copy()
    lab[lab == REGION_IDS["breast"]] = 0
    inputs = region_inputs(chest.image, lab, (8, 8, 4), (8, 8, 4), regions=["breast", "lung"])
    assert inputs.names == ["lung"]
    with pytest.raises(ValueError):
        region_inputs(chest.image, lab[:-1], (8, 8, 4), (8, 8, 4))


def test_prompt_and_rra_target():
    prompt = build_prompt(3)
    assert prompt.count("<image>") == 1 and all(f"The region {i} is <region_{i}>." in prompt for i in range(3))
    assert "<region_3>" not in prompt
    assert "<image>" not in build_prompt(3, use_global=False) and "<region_" not in build_prompt(3, use_local=False)
    reports = {"lung": "The lungs are clear.", "heart": "Mild cardiomegaly."}
    assert build_target(["heart", "lung"], reports) == "The region 0 is heart: Mild cardiomegaly. The region 1 is lung: The lungs are clear."
    assert region_prefix(4, "trachea and bronchi") == "The region 4 is trachea and bronchi:"


def test_shuffling_varies_the_order_and_keeps_the_pairs():
    rng = np.random.default_rng(0)
    names = list(REGION_NAMES)
    orders = {tuple(shuffled(names, rng)) for _ in range(20)}
    assert len(orders) > 15 and all(sorted(o) == list(range(10)) for o in orders)
    reports = {n: f"Text of {n}." for n in names}
    order = [names[i] for i in shuffled(names, rng)]
    parsed = parse_generated(build_target(order, reports))
    assert [(g.index, g.recognised_area, g.text) for g in parsed] == [(i, n, f"Text of {n}.") for i, n in enumerate(order)]


def test_prefix_is_stripped_and_the_area_checked():
    text = "The region 0 is lung: The lungs are clear. The region 1 is heart: Cardiomegaly. The region 2 is spleen: Normal."
    parsed = parse_generated(text)
    assert [g.recognised_area for g in parsed] == ["lung", "heart", None] and parsed[2].raw_area == "spleen"
    assert strip_prefixes(text) == "The lungs are clear. Cardiomegaly. Normal."
    recs = align_to_regions(parsed, ["lung", "pleura", "heart", "bone"])
    assert [(r["region"], r["recognised_area"], r["matched"]) for r in recs] == [
        ("lung", "lung", True),
        ("pleura", "heart", False),
        ("heart", None, False),
        ("bone", None, False),
    ]
    assert recs[1]["text"] == "Cardiomegaly." and recs[3]["text"] == ""


def test_encode_example_masks_the_prompt(tokenizer_for_data):
    tok = tokenizer_for_data
    ids, labels = encode_example(tok, build_prompt(2), "The region 0 is lung: Clear.")
    n_prompt = int((labels == -100).sum())
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and labels[-1] == tok.eos_token_id
    assert (labels[n_prompt:] == ids[n_prompt:]).all() and (labels[:n_prompt] == -100).all()
    assert tok.decode(ids[n_prompt:-1]).strip() == "The region 0 is lung: Clear."
    prompt_only, none = encode_example(tok, build_prompt(2))
    assert none is None and torch.equal(prompt_only, ids[:n_prompt])


def test_region_targets_from_truth_or_the_parser(chest):
    from_truth = region_targets(chest.truth, None)
    assert from_truth == {r: " ".join(t.split()) for r, t in chest.truth["region_reports"].items()}
    from_report = region_targets(None, chest.report)
    assert set(from_report) == set(from_truth)
    for r in from_truth:
        assert from_report[r] == from_truth[r], r
    assert region_targets(None, "   ") == {}


@pytest.fixture(scope="module")
def tokenizer_for_data():
    from lib.networks.reg2rg.tokenizer import train_bpe_tokenizer

    return train_bpe_tokenizer([build_target(["lung"], {"lung": "The lungs are clear."}), build_prompt(10)] * 5, vocab_size=300)


def _lung_with_pleura(shape=(48, 40, 12)):
    """Two lungs in pleura shells with the mediastinum between them; the right lung has a mass the
    anatomy task labelled pleura, and a peripheral lesion it left unlabelled (a notch open to the side)."""
    lung, pleura, medi = REGION_IDS["lung"], REGION_IDS["pleura"], REGION_IDS["mediastinum"]
    m = np.zeros(shape, np.int64)
    m[2:22, 5:35, 1:11] = pleura
    m[4:20, 7:33, 1:11] = lung
    m[26:46, 5:35, 1:11] = pleura
    m[28:44, 7:33, 1:11] = lung
    m[22:26, 5:35, 1:11] = medi  # 4 voxels between the pleurae, 8 between the lungs
    m[10:14, 15:20, 4:8] = pleura  # a mass the anatomy task called pleura
    m[4:7, 20:23, 4:8] = 0  # a peripheral lesion: a notch in the lung, open to the pleura side
    return m


def test_fill_region_holes_gives_the_lung_its_lesions_and_nothing_else():
    m = _lung_with_pleura()
    lung = REGION_IDS["lung"]
    out = fill_region_holes(m, axial_axis=2, closing_iterations=2)
    assert (out[10:14, 15:20, 4:8] == lung).all()  # the mass, whatever label it had
    notch = (slice(4, 7), slice(20, 23), slice(4, 8))
    assert (out[notch] == lung).mean() >= 0.5  # most of the notch, closed by the 3D closing
    changed = out != m
    assert changed.sum() == m[10:14, 15:20, 4:8].size + (out[notch] == lung).sum()  # nothing else moved
    assert (out[22:26] == m[22:26]).all()  # the two lungs are filled one by one: no bridge over the mediastinum
    assert np.array_equal(fill_region_holes(m, regions=()), m)
    # no closing: the notch is not enclosed by the lung, only the mass is
    assert (fill_region_holes(m, closing_iterations=0)[notch] == 0).all()


def test_fill_region_holes_is_the_same_on_a_permuted_flipped_grid():
    m = _lung_with_pleura()
    grid = np.flip(np.transpose(m, (2, 0, 1)), axis=1)  # axial axis now first, one axis flipped
    out = fill_region_holes(grid, axial_axis=0)
    back = np.transpose(np.flip(out, axis=1), (1, 2, 0))
    assert np.array_equal(back, fill_region_holes(m, axial_axis=2))
    assert not np.array_equal(back, m)
