"""Training aids of the ``reg2rg`` train task: the finding-label auxiliary loss (targets, the loss on
region or global tokens), decision-sentence weighting, and a short run with both that still publishes
a checkpoint the infer task loads strictly, with the crop background it was trained with."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.trainers.reg2rg_aux import LABELS, FindingHead, decision_weights, finding_aux_loss, region_label_targets, study_label_target

pytestmark = pytest.mark.usefixtures("one_thread")

REPORTS = {
    "lung": "A 12 mm solid nodule in the left upper lobe. No consolidation.",
    "heart": "The heart is normal in size. No pericardial effusion.",
    "thyroid": "19 mm hypoattenuating nodule in the left lobe of the thyroid gland.",
}


def test_targets_are_the_parser_labels_of_each_region():
    t = region_label_targets(["lung", "heart", "thyroid"], REPORTS)
    assert t.shape == (3, len(LABELS))
    named = [{LABELS[i] for i in np.flatnonzero(row.numpy())} for row in t]
    assert named == [{"lung nodule"}, set(), {"thyroid nodule"}]  # negated findings are no label
    assert {LABELS[i] for i in np.flatnonzero(study_label_target(REPORTS)[0].numpy())} == {"lung nodule", "thyroid nodule"}


def test_loss_uses_region_texture_tokens_else_global_tokens_and_trains_the_head():
    torch.manual_seed(0)
    head = FindingHead(8)
    reg = torch.randn(3, 5, 8, requires_grad=True)  # 4 texture tokens + 1 geometry token per region
    glb = torch.randn(4, 8, requires_grad=True)
    loss = finding_aux_loss(head, glb, reg, 4, ["lung", "heart", "thyroid"], REPORTS)
    loss.backward()
    assert reg.grad[:, :4].abs().sum() > 0 and reg.grad[:, 4].abs().sum() == 0 and glb.grad is None
    glb_only = finding_aux_loss(head, glb, None, 0, ["lung", "heart", "thyroid"], REPORTS)
    glb_only.backward()
    assert glb.grad.abs().sum() > 0
    assert finding_aux_loss(head, None, None, 0, ["lung"], REPORTS) is None
    # a few steps on one fixed input: the head learns the targets
    opt = torch.optim.SGD(head.parameters(), lr=1.0)
    x = reg.detach()
    first = float(finding_aux_loss(head, None, x, 4, ["lung", "heart", "thyroid"], REPORTS))
    for _ in range(50):
        opt.zero_grad()
        finding_aux_loss(head, None, x, 4, ["lung", "heart", "thyroid"], REPORTS).backward()
        opt.step()
    assert float(finding_aux_loss(head, None, x, 4, ["lung", "heart", "thyroid"], REPORTS)) < 0.5 * first


@pytest.mark.parametrize("features", [{}, {"use_texture": False, "use_geometry": False}])
def test_short_run_with_the_aux_loss_publishes_a_strictly_loadable_checkpoint(features, tmp_path):
    from lib.data.studies import generate_dataset
    from .test_reg2rg import _net, _trainer

    root = str(tmp_path / "studies")
    generate_dataset(root, [0, 1, 2], preset="tiny", body="chest")
    net = _net(joint_regions=False, **features)
    stats = _trainer(tmp_path, net)(
        {"max_epochs": 1, "val_split": 0.34, "learning_rate": 1e-3, "device": "cpu", "finding_aux_weight": 1.0, "decision_weight": 3.0, "texture_outside_hu": -400.0},
        LocalDatastore(root, extensions=("*.nii.gz",), auto_reload=False),
    )
    assert stats["finding_aux_weight"] == 1.0 and stats["decision_weight"] == 3.0 and np.isfinite(stats["history"][0]["train_aux_loss"])
    ckpt = torch.load(os.path.join(str(tmp_path), "reg2rg.pt"), map_location="cpu")
    _net(joint_regions=False, **features).load_state_dict(ckpt["model"])  # strict: the head is not in it
    assert ckpt["config"]["texture_outside_hu"] == -400.0  # the infer task prepares crops as in training


def test_negative_aux_weight_is_refused(tmp_path):
    from .test_reg2rg import _trainer

    with pytest.raises(ValueError, match="finding_aux_weight"):
        _trainer(tmp_path)({"finding_aux_weight": -1, "device": "cpu"}, None)


def test_decision_weights_mark_each_prefix_and_first_sentence():
    from lib.data.region_reports import build_prompt, build_target, encode_example

    from .test_reg2rg import _net

    tok = _net().tokenizer
    order = ["lung", "heart"]
    reports = {"lung": "The lungs are clear. No nodule.", "heart": "Cardiomegaly. No effusion."}
    w = decision_weights(tok, order, reports, 4.0)
    _, labels = encode_example(tok, build_prompt(2), build_target(order, reports))
    target = labels[labels != -100]
    assert w.shape == target.shape
    heavy = tok.decode(target[w == 4.0])
    light = tok.decode(target[w == 1.0], skip_special_tokens=True)
    assert "lungs are clear" in heavy and "Cardiomegaly" in heavy and "region 1 is heart" in heavy
    assert "No nodule" in light and "No effusion" in light and "clear" not in light


def test_weighted_loss_with_unit_weights_is_the_plain_loss_and_weights_move_it(tmp_path):
    from lib.data.region_reports import build_prompt, build_target, encode_example

    from .test_reg2rg import _net

    net = _net(joint_regions=False)
    net.eval()
    torch.manual_seed(1)
    glb, reg = net.encode(torch.rand(1, 1, 16, 16, 8), torch.rand(2, 1, 16, 16, 8), torch.rand(2, 1, 16, 16, 8))
    reports = {"lung": "The lungs are clear. No nodule.", "heart": "Cardiomegaly. No effusion here at all."}
    examples = [(*encode_example(net.tokenizer, build_prompt(1), build_target([r], reports)), reg[j : j + 1]) for j, r in enumerate(reports)]
    with torch.no_grad():
        plain = float(net.forward_many(examples, glb))
        ones = [torch.ones(int((lab != -100).sum())) for _, lab, _ in examples]
        assert float(net.forward_many(examples, glb, ones)) == pytest.approx(plain, rel=1e-5)
        heavy = [decision_weights(net.tokenizer, [r], reports, 10.0) for r in reports]
        assert float(net.forward_many(examples, glb, heavy)) != pytest.approx(plain, rel=1e-3)
        with pytest.raises(ValueError, match="target weights"):
            net.forward_many(examples, glb, [torch.ones(3), torch.ones(3)])


def test_fill_region_holes_is_applied_and_saved(tmp_path, monkeypatch):
    """``fill_region_holes``: every training study's region map is filled (lung holes given back), and the
    checkpoint says so, for the infer task to fill the served maps the same way."""
    import lib.trainers.reg2rg as trainer_module
    from lib.data.region_reports import fill_region_holes
    from lib.data.studies import generate_dataset

    from .test_reg2rg import _net, _trainer

    seen = []
    monkeypatch.setattr(trainer_module, "fill_region_holes", lambda lab, **kw: seen.append(kw) or fill_region_holes(lab, **kw))
    root = str(tmp_path / "studies")
    generate_dataset(root, [0, 1], preset="tiny", body="chest")
    _trainer(tmp_path, _net(joint_regions=False))(
        {"max_epochs": 1, "val_split": 0.0, "learning_rate": 1e-3, "device": "cpu", "fill_region_holes": True},
        LocalDatastore(root, extensions=("*.nii.gz",), auto_reload=False),
    )
    assert len(seen) == 2 and all(kw == {"axial_axis": 2} for kw in seen)
    assert torch.load(os.path.join(str(tmp_path), "reg2rg.pt"), map_location="cpu")["config"]["fill_region_holes"] is True
