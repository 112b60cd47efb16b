"""MedGrounder's network: shapes in 2D and 3D, the frozen text encoder outside the state dict,
sentences sharing one image encoding, and a tiny overfit (zero / one / two boxes)."""
from __future__ import annotations

import pytest
import torch

from lib.networks.medgrounder import GroundingLoss, MedGrounder, MedGrounderConfig, scored_corner_boxes, select_boxes

HASH = {"backend": "hash", "dim": 32}


def _cfg(nd=3, **kw):
    return MedGrounderConfig.tiny(spatial_dims=nd, in_channels=1, image_size=32, text_encoder=HASH, **kw)


@pytest.mark.parametrize("nd", [2, 3])
def test_output_shapes_and_ranges(nd):
    torch.manual_seed(0)
    cfg = _cfg(nd)
    m = MedGrounder(cfg)
    x = torch.rand(2, 1, *([32] * nd))
    out = m(x, ["a right pleural effusion", "no pneumothorax", "cardiomegaly"], image_index=[0, 1, 1])
    assert out["pred_logits"].shape == (3, cfg.num_queries)
    assert out["pred_boxes"].shape == (3, cfg.num_queries, 2 * nd)
    assert ((out["pred_boxes"] >= 0) & (out["pred_boxes"] <= 1)).all()
    assert len(out["aux_outputs"]) == cfg.dec_layers - 1


def test_text_encoder_is_frozen_and_not_in_the_checkpoint():
    m = MedGrounder(_cfg())
    assert not any(k.startswith("text_encoder") for k in m.state_dict())
    assert "text_proj.weight" in m.state_dict()


def test_sentence_sees_its_own_image():
    """image_index routes each sentence to its image: swapping images changes the answer."""
    torch.manual_seed(0)
    m = MedGrounder(_cfg()).eval()
    a, b = torch.rand(1, 1, 32, 32, 32), torch.zeros(1, 1, 32, 32, 32)
    x = torch.cat([a, b])
    o1 = m(x, ["nodule", "nodule"], image_index=[0, 1])
    o2 = m(a, ["nodule"])
    assert torch.allclose(o1["pred_boxes"][0], o2["pred_boxes"][0], atol=1e-5)
    assert not torch.allclose(o1["pred_boxes"][0], o1["pred_boxes"][1], atol=1e-4)


def test_wrong_image_index_length_is_an_error():
    m = MedGrounder(_cfg())
    with pytest.raises(ValueError):
        m(torch.rand(1, 1, 32, 32, 32), ["a", "b"], image_index=[0])


@pytest.mark.parametrize("nd", [2, 3])
def test_tiny_overfit_zero_one_and_two_boxes(nd):
    """A few hundred steps on three sentences of two images: the thresholded answer is the target set."""
    torch.manual_seed(0)
    cfg = _cfg(nd, num_queries=4)
    m = MedGrounder(cfg)
    g = torch.Generator().manual_seed(1)
    imgs = torch.rand(2, 1, *([32] * nd), generator=g)
    sents = ["small right pleural effusion", "no pneumothorax", "bilateral pleural effusions"]
    idx = [0, 0, 1]
    one = [0.3, 0.6] + ([0.5] if nd == 3 else []) + [0.2, 0.3] + ([0.25] if nd == 3 else [])
    left = [0.7, 0.6] + ([0.5] if nd == 3 else []) + [0.2, 0.3] + ([0.25] if nd == 3 else [])
    targets = [torch.tensor([one]), torch.zeros(0, 2 * nd), torch.tensor([one, left])]
    loss_fn = GroundingLoss(cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    text = m.encode_text(sents)
    first = None
    for step in range(300):
        out = m(imgs, text=text, image_index=idx)
        loss = loss_fn(out, targets)["total"]
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.2 * first
    m.eval()
    with torch.no_grad():
        out = m(imgs, text=text, image_index=idx)
    from lib.metrics.boxes import iou_matrix
    from lib.networks.medgrounder import boxes_to_corners

    for i, tgt in enumerate(targets):
        corners, scores = scored_corner_boxes(out["pred_logits"][i], out["pred_boxes"][i])
        boxes, _ = select_boxes(corners, scores, 0.5)
        assert len(boxes) == len(tgt), (i, scores)
        if len(tgt):
            iou = iou_matrix(torch.as_tensor(boxes, dtype=torch.float32), boxes_to_corners(tgt))
            assert (iou.max(0).values > 0.5).all()
