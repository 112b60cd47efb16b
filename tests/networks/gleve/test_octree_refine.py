"""OcRe (000 §2.4, eq. 6): root cube, node split/merge, identity at init, active nodes, gradients."""
from __future__ import annotations

import torch

from lib.networks.gleve.octree_refine import (
    OctreeRefiner,
    RootCube,
    crop_cube,
    make_root_cube,
    merge_nodes,
    paste_cube,
    split_nodes,
)


def test_root_cube_encloses_candidate():
    bbox = ((10, 14), (3, 6), (20, 29))
    cube = make_root_cube(bbox, (32, 32, 32), depth=3, margin=2)
    assert cube.side % 4 == 0 and cube.side >= 9 + 4
    for (lo, hi), start in zip(bbox, cube.lo):
        assert start <= lo - 2 or start == 0
        assert start + cube.side >= hi + 2 or start + cube.side == 32
        assert 0 <= start and start + cube.side <= 32
    small = make_root_cube(((0, 2), (0, 2), (0, 2)), (6, 40, 40), depth=2, margin=4)
    assert small.side == 10 and small.lo[0] == (6 - 10) // 2  # volume thinner than the cube: padded
    assert make_root_cube(((0, 100),) * 3, (100,) * 3, depth=2, max_side=32).side == 32


def test_crop_and_paste_round_trip():
    x = torch.arange(6 * 5 * 4, dtype=torch.float32).reshape(1, 6, 5, 4)
    cube = RootCube(lo=(-2, 1, 0), side=6)
    c = crop_cube(x, cube)
    assert c.shape == (1, 6, 6, 6)
    assert torch.equal(c[0, 2:, :4, :4], x[0, :4, 1:5, :4]) and (c[0, :2] == 0).all() and (c[0, :, :, 4:] == 0).all()
    back = paste_cube(c[0], cube, (6, 5, 4), fill=-1.0)
    assert torch.equal(back[:4, 1:5], x[0, :4, 1:5]) and (back[4:] == -1).all() and (back[:, 0] == -1).all()


def test_split_merge_round_trip_and_halo():
    x = torch.randn(2, 8, 8, 8)
    blocks = split_nodes(x, 2, 0)
    assert blocks.shape == (8, 2, 4, 4, 4)
    assert torch.equal(blocks[1], x[:, :4, :4, 4:]) and torch.equal(blocks[7], x[:, 4:, 4:, 4:])
    assert torch.equal(merge_nodes(blocks, 2), x)
    halo = split_nodes(x, 2, 1)
    assert halo.shape == (8, 2, 6, 6, 6)
    assert torch.equal(halo[7][:, :5, :5, :5], x[:, 3:, 3:, 3:])  # neighbours' voxels as context


def _scene(shape=(24, 24, 24)):
    torch.manual_seed(0)
    feats = torch.randn(4, *shape)
    init = torch.zeros(shape)
    init[8:12, 8:12, 8:12] = 1.0
    return feats, init, ((8, 12), (8, 12), (8, 12))


def test_identity_at_init_depth_one():
    feats, init, bbox = _scene()
    ref = OctreeRefiner(4, hidden=8, depth=1, margin=2)
    out = ref(feats, init, bbox)
    assert out.logits.shape == init.shape
    vol, _ = out.cube.slices(init.shape)
    assert torch.allclose(out.probs[vol], 1e-4 + (1 - 2e-4) * init[vol], atol=1e-5)  # zero-initialised head
    outside = torch.ones_like(init, dtype=torch.bool)
    outside[vol] = False
    assert (out.logits[outside] == ref.outside_logit).all()


def test_levels_double_resolution_and_skip_settled_nodes():
    feats, init, bbox = _scene((32, 32, 32))
    ref = OctreeRefiner(4, hidden=8, depth=3, margin=4, min_block=2)
    out = ref(feats, init, bbox)
    b = out.cube.side // 4
    assert [lv.shape[-1] for lv in out.level_logits] == [b, 2 * b, 4 * b]
    assert out.active_nodes[0] == 1 and out.active_nodes[1] <= 8 and out.active_nodes[2] < 64
    assert torch.isfinite(out.logits).all()


def test_gradients_reach_head_features_and_coarse_mask():
    feats, init, bbox = _scene()
    feats.requires_grad_(True)
    init = init.clone().requires_grad_(True)
    ref = OctreeRefiner(4, hidden=8, depth=2, margin=2)
    target = torch.zeros_like(init)
    target[9:11, 9:11, 9:11] = 1.0
    out = ref(feats, init, bbox)
    torch.nn.functional.binary_cross_entropy_with_logits(out.logits, target).backward()
    assert ref.head.conv_out.weight.grad.abs().sum() > 0
    assert init.grad.abs().sum() > 0
    # one step later the whole head (and so F~) receives gradient
    with torch.no_grad():
        ref.head.conv_out.weight.add_(0.1)
    feats.grad = None
    out = ref(feats, init.detach(), bbox)
    torch.nn.functional.binary_cross_entropy_with_logits(out.logits, target).backward()
    assert ref.head.conv_in.weight.grad.abs().sum() > 0 and feats.grad.abs().sum() > 0
