"""Seg-det-explain's model: visual module, routing-token embeddings, closer look, losses (eq. 7-10),
training step, checkpoints and inference, on tiny configs."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lib.data.slice_grounding import DET, SEG, synthetic_samples
from lib.networks.segdetexplain import SegDetExplain, SegDetExplainConfig
from lib.networks.segdetexplain.batching import collate
from lib.networks.segdetexplain.closer import crop_resize, paste, roi_from_mask
from lib.networks.segdetexplain.losses import SegDetExplainLoss
from lib.networks.segdetexplain.model import emitting_positions

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def samples():
    xs = synthetic_samples([5], "tiny")
    pos = [x for x in xs if x.mask.any() and SEG in x.answer and DET in x.answer][:3]
    neg = [x for x in xs if not x.mask.any()][:1]
    det_only = [x for x in xs if x.mask.any() and SEG not in x.answer][:1]
    return pos + neg + det_only


@pytest.fixture(scope="module")
def built(samples):
    torch.manual_seed(0)
    cfg = SegDetExplainConfig.tiny(image_size=64, max_new_tokens=6)
    corpus = [t for x in samples for t in (x.question, x.answer, x.closer_question)]
    return SegDetExplain.build(cfg, corpus=corpus)


def test_emitting_positions_is_the_state_before_the_token():
    ids = torch.tensor([[5, 6, 9, 7], [5, 5, 5, 5], [9, 1, 9, 2]])
    rows, pos = emitting_positions(ids, 9)
    assert rows.tolist() == [0, 2] and pos.tolist() == [1, -1]


def test_visual_module_shapes(built):
    v = built.visual
    z = v.encode(torch.rand(2, 50, 50))
    assert z.shape[:2] == (2, built.cfg.prompt_dim)
    logits = v.segment(z, torch.randn(2, built.cfg.prompt_dim))
    assert logits.shape == (2, v.size, v.size)
    boxes, obj = v.detect(z, torch.randn(2, built.cfg.prompt_dim))
    assert boxes.shape == (2, built.cfg.num_box_queries, 4) and obj.shape == (2, built.cfg.num_box_queries)
    assert boxes.min() >= 0 and boxes.max() <= 1


def test_roi_is_square_contains_the_mask_and_pastes_back():
    m = np.zeros((64, 64), bool)
    m[10:20, 30:36] = True
    i1, j1, i2, j2 = roi_from_mask(m, margin=0.25, min_frac=0.1)
    assert i2 - i1 == j2 - j1 and i1 <= 10 and i2 >= 20 and j1 <= 30 and j2 >= 36
    assert roi_from_mask(np.zeros((8, 8))) is None
    edge = np.zeros((64, 64), bool)
    edge[0:3, 60:64] = True
    r = roi_from_mask(edge, 0.25, 0.2)
    assert r[0] >= 0 and r[3] <= 64 and r[2] - r[0] == r[3] - r[1]
    full = torch.rand(64, 64)
    roi = (i1, j1, i2, j2)
    back = paste(torch.zeros(64, 64), crop_resize(full, roi, 64), roi)
    assert torch.allclose(back[i1:i2, j1:j2], full[i1:i2, j1:j2], atol=0.15)
    assert back[:i1].abs().sum() == 0 and back[i2:].abs().sum() == 0


def test_losses_prefer_the_right_answer():
    cfg = SegDetExplainConfig.tiny()
    loss = SegDetExplainLoss(cfg)
    target = torch.zeros(2, 16, 16)
    target[:, 4:10, 4:10] = 1
    good = loss.segmentation((target * 2 - 1) * 10, target)
    bad = loss.segmentation(-(target * 2 - 1) * 10, target)
    assert good < 0.05 < bad
    gt = [torch.tensor([[0.1, 0.1, 0.4, 0.5]]), torch.tensor([[0.5, 0.5, 0.9, 0.7], [0.0, 0.0, 0.2, 0.2]])]
    q = 4
    boxes = torch.rand(2, q, 4) * 0.2 + 0.3
    logits = torch.full((2, q), -5.0)
    right = boxes.clone()
    right[0, 2] = torch.tensor([0.25, 0.3, 0.3, 0.4])  # cxcywh of gt[0][0]
    right[1, 0] = torch.tensor([0.7, 0.6, 0.4, 0.2])
    right[1, 3] = torch.tensor([0.1, 0.1, 0.2, 0.2])
    conf = logits.clone()
    conf[0, 2] = conf[1, 0] = conf[1, 3] = 5.0
    best = loss.detection(right, conf, gt)
    assert best < 0.05 < loss.detection(boxes, logits, gt)
    perm = torch.tensor([3, 1, 0, 2])  # Hungarian matching: the query order does not matter
    assert torch.isclose(loss.detection(right[:, perm], conf[:, perm], gt), best, atol=1e-5)
    total = loss.total(torch.tensor(1.0), torch.tensor(2.0), None)
    assert float(total["loss"]) == pytest.approx(cfg.lambda_lm + 2 * cfg.lambda_seg)


def test_training_loss_reaches_every_part_and_decreases(built, samples):
    cfg = built.cfg
    batch = collate(samples, cfg, built.tokenizer, built.processor)
    assert sum(r is not None for r in batch.rois) == 3  # closer look only where [seg] is asked
    out = built.training_loss(batch)
    assert all(torch.isfinite(v) for v in out.values()) and out["seg"] > 0 and out["det"] > 0
    out["loss"].backward()
    for name in ("projector.0.weight", "visual.detector.box_head.0.weight", "visual.sam.mask_decoder.iou_token.weight", "visual.sam.vision_encoder.patch_embed.projection.weight"):
        g = dict(built.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in built.named_parameters() if "lora_" in n)
    built.zero_grad()
    opt = torch.optim.AdamW([p for p in built.parameters() if p.requires_grad], lr=2e-3)
    first = float(out["loss"])
    for _ in range(8):
        o = built.training_loss(batch)
        opt.zero_grad()
        o["loss"].backward()
        opt.step()
    assert float(o["loss"]) < first


def test_checkpoint_round_trip_and_predict(built, samples):
    buf = io.BytesIO()
    torch.save(built.checkpoint(), buf)
    again = SegDetExplain.from_checkpoint(torch.load(io.BytesIO(buf.getvalue()), weights_only=False))
    x = samples[0]
    img = np.pad(x.image, ((0, 6), (0, 0)), constant_values=-1000)  # a non-square slice
    a = built.predict(img, x.question, x.target, want=(SEG, DET), closer=True)
    b = again.predict(img, x.question, x.target, want=(SEG, DET), closer=True)
    assert a["prob"].shape == img.shape and a["round1_prob"].shape == img.shape
    np.testing.assert_allclose(a["prob"], b["prob"], atol=1e-5)
    assert a["text"] == b["text"]
    assert a["boxes"].shape == (built.cfg.num_box_queries, 4)
    assert (a["boxes"][:, 2] <= img.shape[0] + 1e-4).all() and (a["boxes"][:, 3] <= img.shape[1] + 1e-4).all()
    c = built.predict(img, x.question, x.target, want=(SEG,), closer=False)
    assert c["closer"] is None and np.allclose(c["prob"], c["round1_prob"])
    with pytest.raises(ValueError):
        bad = built.checkpoint()
        bad["perception"] = {"nonsense.weight": torch.zeros(1)}
        SegDetExplain.from_checkpoint(bad)


def test_roi_ignores_stray_pixels_but_keeps_real_fragments():
    m = np.zeros((64, 64), bool)
    m[30:40, 30:40] = True
    m[2, 2] = True  # a stray pixel far away
    assert roi_from_mask(m, margin=0.0, min_frac=0.0) == (30, 30, 40, 40)
    m[30:40, 50:56] = True  # a second real fragment (60 px >= 10% of 100)
    i1, j1, i2, j2 = roi_from_mask(m, margin=0.0, min_frac=0.0)
    assert j1 <= 30 and j2 >= 56
