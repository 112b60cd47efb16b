import numpy as np
import pytest

from lib.networks.medvolr1.answer import ParsedAnswer, parse_response
from lib.networks.medvolr1.targets import component_boxes, sft_target, slice_areas, topk_key_slice
from lib.networks.medvolr1.volume import mask_to_sequence, mask_to_source, sample_z, to_sequence


def test_sample_z_is_uniform_and_covers_the_volume():
    z = sample_z(29, 16)
    assert z[0] == 0 and z[-1] == 28 and np.all(np.diff(z) >= 1)
    assert list(sample_z(4, 6)) == [0, 1, 1, 2, 2, 3]  # repeats when too few slices


def test_sequence_and_mask_round_trip():
    vol = np.full((40, 30, 20), -1000, np.int16)
    vol[10:30, 5:20, 4:16] = 40
    mask = vol > 0
    seq = to_sequence(vol, 10, 32)
    assert seq.image.shape == (10, 32, 32) and 0 <= seq.image.min() and seq.image.max() <= 1
    sm = mask_to_sequence(mask, seq)
    assert sm.shape == (10, 32, 32) and sm.any()
    back = mask_to_source(sm, seq)
    assert back.shape == mask.shape
    inter = np.logical_and(back, mask).sum()
    assert 2 * inter / (back.sum() + mask.sum()) > 0.85


def test_mask_shape_mismatch_raises():
    seq = to_sequence(np.zeros((8, 8, 8)), 4, 8)
    with pytest.raises(ValueError):
        mask_to_sequence(np.zeros((8, 8, 9), bool), seq)


def test_topk_key_slice_draws_from_the_k_most_visible():
    m = np.zeros((6, 8, 8), bool)
    for t, n in [(1, 2), (2, 6), (3, 8), (4, 4)]:
        m[t, :n, :1] = True
    assert list(slice_areas(m)) == [0, 2, 6, 8, 4, 0]
    rng = np.random.default_rng(0)
    picks = {topk_key_slice(m, 2, rng) for _ in range(50)}
    assert picks == {2, 3}
    assert topk_key_slice(m, 1) == 3
    with pytest.raises(ValueError):
        topk_key_slice(np.zeros((3, 4, 4), bool), 2)


def test_component_boxes_one_per_component_largest_first():
    s = np.zeros((20, 20), bool)
    s[1:3, 1:3] = True
    s[10:16, 5:9] = True
    b = component_boxes(s)
    assert b.tolist() == [[10, 5, 16, 9], [1, 1, 3, 3]]
    assert component_boxes(np.zeros((4, 4), bool)).shape == (0, 4)


def test_sft_target_parses_and_points_at_the_target(items):
    it = items[0]
    text = sft_target(it.seq_mask, it.query.target, k=1)
    p = parse_response(text, it.seq.n_slices, it.seq.size)
    assert isinstance(p, ParsedAnswer)
    assert slice_areas(it.seq_mask)[p.slice_index] == slice_areas(it.seq_mask).max()
    assert it.query.target.split("_")[0] in p.think
