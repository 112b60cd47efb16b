"""The GLeVE train task: datalist, delta gating (000 eq. 8), skipping bad studies, crop, publishing."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.anatomy.labels import ANATOMY_STRUCTURES
from lib.data.studies import generate_dataset, image_path, read_truth, report_path
from lib.networks.gleve import GLeVE, GLeVEConfig, GLeVELoss
from lib.networks.gleve.report_graph import LesionTarget
from lib.trainers.gleve import GleveTrain, crop_pad, lesion_organ_ids, organ_crop_box, study_crop_box

SPACING = (6, 6, 10)  # the tiny preset's native spacing
TEXT = {"backend": "hash", "dim": 384}  # no MiniLM load
REPORT_ONLY, LABELLED = 2, (5, 7)  # abdominal studies with lesions (checked below)
CPU = {"device": "cpu", "pretrained": False}


pytestmark = pytest.mark.usefixtures("one_thread")


def _net(seed: int = 0) -> GLeVE:
    torch.manual_seed(seed)
    return GLeVE(GLeVEConfig.tiny(text_encoder=TEXT))


def _trainer(tmp_path, net=None, **kw) -> GleveTrain:
    model_dir = os.path.join(str(tmp_path), "model")
    return GleveTrain(model_dir, net or _net(), SPACING, os.path.join(model_dir, "gleve.pt"), **kw)


def _datastore(root: str, seeds, report_only, body: str = "abdomen") -> LocalDatastore:
    generate_dataset(root, seeds, preset="tiny", report_only_fraction=set(report_only), body=body)
    for s in seeds:
        assert read_truth(root, f"synth_{s:05d}")["lesions"], f"seed {s} has no lesion"
    return LocalDatastore(root, extensions=("*.nii.gz",), auto_reload=False)


class LossSpy(GLeVELoss):
    """Records whether each call got target masks (delta = 1) or not (delta = 0)."""

    calls: list = []

    def forward(self, out, target_masks=None):
        res = super().forward(out, target_masks)
        LossSpy.calls.append((target_masks is not None, float(res["seg"].detach()), float(res["total"].detach())))
        return res


@pytest.fixture
def spy(monkeypatch):
    LossSpy.calls = []
    monkeypatch.setattr(GLeVE, "make_loss", lambda self: LossSpy({"tau": self.config.tau, **self.config.loss}))
    return LossSpy.calls


def test_short_run_publishes_loadable_checkpoint_and_stats(tmp_path, spy):
    ds = _datastore(str(tmp_path / "ds"), [REPORT_ONLY, *LABELLED], [REPORT_ONLY], body="both")
    trainer = _trainer(tmp_path)
    stats = trainer({**CPU, "max_epochs": 2, "val_split": 0.34}, ds)

    assert stats["total_epochs"] == 2 and stats["epoch"] == 2 and len(stats["history"]) == 2
    assert np.isfinite(stats["train_loss"]) and np.isfinite(stats["train_seg_loss"])
    assert stats["n_weak"] == 1 and stats["n_train"] == 2 and stats["n_val"] == 1 and stats["n_skipped"] == 0
    used = stats["train_ids"] + stats["val_ids"]
    assert sorted(used) == sorted(f"synth_{s:05d}" for s in (REPORT_ONLY, *LABELLED))
    assert stats["n_other_body"] == 3 and not any(i.startswith("chest_") for i in used)
    assert stats["val_ids"] == [f"synth_{LABELLED[-1]:05d}"]  # validation only on labelled studies
    assert stats["best_metric_epoch"] in (1, 2) and 0.0 <= stats["best_metric"] <= 1.0
    assert 0.0 <= stats["val_LR"] <= 1.0
    # eq. 8: the labelled study got its masks (seg > 0), the report-only one none (seg = 0)
    assert {m for m, _, _ in spy} == {True, False} and len(spy) == 4
    assert all((seg > 0) == masked for masked, seg, _ in spy)

    on_disk = json.load(open(os.path.join(trainer.model_dir, "train_stats.json")))
    assert on_disk == trainer.stats() and on_disk["total_epochs"] == 2 and "total_time" in on_disk and "start_ts" in on_disk
    ckpt = torch.load(trainer.publish_path, map_location="cpu")
    assert set(ckpt) == {"model", "config", "epoch", "metric"} and ckpt["epoch"] == stats["best_metric_epoch"]
    fresh = GLeVE(GLeVEConfig.from_dict(ckpt["config"]))
    fresh.load_state_dict(ckpt["model"])  # strict
    assert not any(f.startswith(".") for f in os.listdir(trainer.model_dir))  # no temp file left behind

    # pretrained: the next run starts from the published weights
    again = _trainer(tmp_path, net=_net(seed=1), load_path=trainer.publish_path)
    again_stats = again({**CPU, "pretrained": True, "max_epochs": 1, "val_split": 0.0}, ds)
    assert again_stats["pretrained"] == trainer.publish_path and again_stats["best_metric"] is None


def test_report_only_study_alone_trains_with_weak_loss(tmp_path, spy):
    ds = _datastore(str(tmp_path / "ds"), [REPORT_ONLY], [REPORT_ONLY])
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    stats = _trainer(tmp_path, net=net)({**CPU, "max_epochs": 1}, ds)
    assert stats["n_train"] == 1 and stats["n_weak"] == 1 and stats["n_val"] == 0
    assert stats["train_seg_loss"] is None and stats["best_metric"] is None
    assert np.isfinite(stats["train_loss"]) and stats["train_loss"] > 0
    assert spy and all(not masked and seg == 0.0 for masked, seg, _ in spy)
    changed = [k for k, v in net.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any(k.startswith("visual.") for k in changed) and any(k.startswith("graph.") for k in changed)
    assert os.path.exists(os.path.join(str(tmp_path), "model", "gleve.pt"))


def test_unreadable_report_and_corrupt_volume_are_skipped(tmp_path):
    root = str(tmp_path / "ds")
    ds = _datastore(root, [REPORT_ONLY, *LABELLED], [REPORT_ONLY])
    with open(report_path(root, f"synth_{LABELLED[0]:05d}"), "wb") as f:
        f.write(b"\xff\xfe\x00\x00 binary \x00 junk \xc3\x28")
    with open(image_path(root, f"synth_{LABELLED[1]:05d}"), "wb") as f:
        f.write(b"\x1f\x8b\x08\x00 this is not a nifti")
    # the remaining study's report lives in the datastore's image info instead of a sidecar
    sid = f"synth_{REPORT_ONLY:05d}"
    text = open(report_path(root, sid), encoding="utf-8").read()
    os.unlink(report_path(root, sid))
    ds.update_image_info(sid, {"report": text})
    trainer = _trainer(tmp_path)
    stats = trainer({**CPU, "max_epochs": 1, "val_split": 0.0}, ds)
    assert stats["n_skipped"] == 2 and stats["n_train"] == 1 and stats["train_ids"] == [sid]
    assert stats["skipped"][f"synth_{LABELLED[0]:05d}"].startswith("unreadable_report")
    assert stats["skipped"][f"synth_{LABELLED[1]:05d}"].startswith("unreadable_volume")
    assert os.path.exists(trainer.publish_path) and trainer.stats()["n_skipped"] == 2


def test_crop_keeps_named_organs_and_is_divisible_by_four():
    lab = np.zeros((30, 25, 13), np.uint8)
    lab[0:7, 3:20, 2:13] = 1  # touches the low x and high z border
    lab[20:29, 10:14, 4:6] = 3
    for ids, margin in (([1], 5.0), ([3], 12.0), ([1, 3], 0.0), ([1], None), ([9], 5.0)):
        box = organ_crop_box(lab, ids, (2.0, 2.0, 3.0), margin, 4)
        assert all((hi - lo) % 4 == 0 and hi > lo for lo, hi in box)
        crop = crop_pad(lab, box, 0)
        for oid in (ids if margin is not None and 9 not in ids else [1, 3]):
            assert (crop == oid).sum() == (lab == oid).sum()  # every voxel of the named organs kept
    tight = organ_crop_box(lab, [3], (2.0, 2.0, 3.0), 0.0, 4)
    assert [hi - lo for lo, hi in tight] == [12, 4, 4]
    assert crop_pad(torch.from_numpy(lab), organ_crop_box(lab, [1], (1, 1, 1), None, 4), 0).shape == (32, 28, 16)
    names = ("liver", "spleen", "kidney_right", "kidney_left")
    assert lesion_organ_ids([LesionTarget("kidney")], names) == [ANATOMY_STRUCTURES["kidney_right"], ANATOMY_STRUCTURES["kidney_left"]]
    # a lesion whose organ has no channel, or is missing from the map, is searched everywhere: no crop
    full = [(-1, 31), (-1, 27), (-1, 15)]  # the whole volume, centred in its padding
    assert study_crop_box(lab, [LesionTarget("liver")], names, (2, 2, 3), 5.0) != full
    assert study_crop_box(lab, [LesionTarget("liver"), LesionTarget("pancreas")], names, (2, 2, 3), 5.0) == full
    assert study_crop_box(lab, [LesionTarget("liver"), LesionTarget("spleen")], names, (2, 2, 3), 5.0) == full


def test_loaded_study_crop_holds_the_reported_organs(tmp_path):
    root = str(tmp_path / "ds")
    ds = _datastore(root, [LABELLED[0]], [])
    trainer = _trainer(tmp_path)
    (entry,), _ = trainer.datalist(ds)
    s = trainer.load_study(entry, 4.0, 16.0)
    full = trainer.load_study(entry, 4.0, None)
    assert all(n % 4 == 0 for n in s.image.shape[2:]) and s.image.numel() < full.image.numel()
    assert s.organ_maps.shape[1:] == s.image.shape[2:] == s.hu.shape == s.target_masks.shape[1:]
    ch = trainer._network.config.organ_names.index(s.graph.lesions[0].organ)
    assert float((s.organ_maps[ch] > 0.5).sum()) == pytest.approx(float((full.organ_maps[ch] > 0.5).sum()))
    # every annotated lesion assigned to a report lesion, entirely inside the crop
    assert all(a is not None for a in s.assigned)
    assert [float(m.sum()) for m in s.target_masks] == [float(m.sum()) for m in full.target_masks]


def test_visual_encoder_starts_from_the_lesion_segmenter(tmp_path):
    """The tiny GLeVE backbone is lesion_baseline's UNet: every matching tensor is copied, the output layer is not."""
    from lib.configs.gleve import TINY_VISUAL
    from lib.configs.segmentation import UNET_TINY
    from lib.networks.ct_segmenter import build_ct_segmenter
    from lib.networks.gleve.model import GLeVE, GLeVEConfig
    from lib.trainers.gleve import init_visual_encoder

    torch.manual_seed(1)
    seg = build_ct_segmenter(out_channels=2, **UNET_TINY)
    path = str(tmp_path / "seg.pt")
    torch.save({"model": seg.state_dict()}, path)
    model = GLeVE(GLeVEConfig.tiny(text_encoder={"backend": "hash", "dim": 384}, visual=dict(TINY_VISUAL)))
    assert init_visual_encoder(model, path) == f"visual:{path}"
    own, src = model.visual.state_dict(), seg.state_dict()
    same = [k for k in own if k in src and own[k].shape == src[k].shape]
    assert len(same) > 0.8 * len(own)
    assert all(torch.equal(own[k], src[k]) for k in same)
    assert any(k in src and own[k].shape != src[k].shape for k in own)  # the C-channel output layer stays GLeVE's
    assert init_visual_encoder(model, str(tmp_path / "missing.pt")) is None


def test_mask_ratio_hides_masks_and_weak_switch_drops_report_only_studies():
    """000 Table 1: r of the labelled training studies keep their masks, the rest train on their
    reports (weak) - or, without weak supervision, are left out."""
    from lib.trainers.gleve import StudyTensors

    def study(i, labelled):
        t = torch.zeros(1, 4, 4, 4)
        return StudyTensors(f"s{i:02d}", t[None], t[0], t, None, (1.0, 1.0, 1.0), [], t if labelled else None, [0] if labelled else [])

    train = [study(i, labelled=i < 10) for i in range(14)]  # 10 labelled, 4 report-only
    mixed = GleveTrain.apply_mask_ratio(train, 0.2, weak_supervision=True, seed=0)
    assert len(mixed) == 14 and sum(s.has_mask for s in mixed) == 2
    assert all(s.has_mask for s in train[:10])  # the caller's studies are not modified
    alone = GleveTrain.apply_mask_ratio(train, 0.2, weak_supervision=False, seed=0)
    assert len(alone) == 2 and all(s.has_mask for s in alone)
    assert {s.image_id for s in alone} == {s.image_id for s in mixed if s.has_mask}  # the same masks in both arms
    assert sum(s.has_mask for s in GleveTrain.apply_mask_ratio(train, 0.01, True, 0)) == 1  # at least one
    assert sum(s.has_mask for s in GleveTrain.apply_mask_ratio(train, 1.0, True, 0)) == 10
    assert GleveTrain.apply_mask_ratio(train, 0.0, False, 0) == []
    with pytest.raises(ValueError):
        GleveTrain.apply_mask_ratio(train, 1.5, True, 0)


def test_epoch_draws_report_only_studies_but_keeps_every_mask():
    """``weak_per_epoch``: each epoch trains every masked study and a fresh draw of k report-only
    ones (so 10 % masks + reports costs little more per epoch than the masks alone); None: all."""
    import random

    from lib.trainers.gleve import StudyTensors

    def study(i, labelled):
        t = torch.zeros(1, 4, 4, 4)
        return StudyTensors(f"s{i:02d}", t[None], t[0], t, None, (1.0, 1.0, 1.0), [], t if labelled else None, [0] if labelled else [])

    train = [study(i, labelled=i < 3) for i in range(12)]  # 3 masked, 9 report-only
    rng = random.Random(0)
    seen = set()
    for _ in range(20):
        order = GleveTrain.epoch_studies(train, 2, rng)
        assert len(order) == 5 and len({s.image_id for s in order}) == 5
        assert {s.image_id for s in order if s.has_mask} == {"s00", "s01", "s02"}
        seen |= {s.image_id for s in order if not s.has_mask}
    assert len(seen) > 6  # fresh draws: most report-only studies train within 20 epochs
    assert sorted(s.image_id for s in GleveTrain.epoch_studies(train, None, rng)) == [s.image_id for s in train]
    assert sorted(s.image_id for s in GleveTrain.epoch_studies(train, 50, rng)) == [s.image_id for s in train]
    assert [s.has_mask for s in GleveTrain.epoch_studies(train, 0, rng)] == [True] * 3


def test_weak_per_epoch_limits_the_report_only_steps(tmp_path, spy):
    ds = _datastore(str(tmp_path / "ds"), [REPORT_ONLY, *LABELLED], [REPORT_ONLY, LABELLED[0]])
    stats = _trainer(tmp_path)({**CPU, "max_epochs": 2, "val_split": 0.0, "weak_per_epoch": 1}, ds)
    assert stats["n_weak"] == 2 and stats["weak_per_epoch"] == 1
    assert [r["steps"] for r in stats["history"]] == [2, 2]  # 1 masked + 1 of the 2 report-only, each epoch
    assert sorted(m for m, _, _ in spy) == [False, False, True, True]
    with pytest.raises(ValueError, match="weak_per_epoch"):
        _trainer(tmp_path)({**CPU, "max_epochs": 1, "weak_per_epoch": -1}, ds)


def test_weak_start_epoch_keeps_report_only_studies_out_until_then(tmp_path, spy):
    """``weak_start_epoch``: the masks alone train first; the report-only studies join later."""
    ds = _datastore(str(tmp_path / "ds"), [REPORT_ONLY, *LABELLED], [REPORT_ONLY, LABELLED[0]])
    stats = _trainer(tmp_path)({**CPU, "max_epochs": 3, "val_split": 0.0, "weak_start_epoch": 3}, ds)
    assert stats["weak_start_epoch"] == 3
    assert [r["steps"] for r in stats["history"]] == [1, 1, 3]  # 1 masked; + both report-only at epoch 3
    assert sorted(m for m, _, _ in spy) == [False, False, True, True, True]
    with pytest.raises(ValueError, match="weak_start_epoch"):
        _trainer(tmp_path)({**CPU, "max_epochs": 1, "weak_start_epoch": 0}, ds)


def test_before_the_reports_join_the_epoch_order_is_that_of_the_masks_alone():
    """The "+ reports" arm draws its masked studies exactly as the "masks alone" arm does until
    ``weak_start_epoch``, so the two arms differ only by the weak term afterwards."""
    import random

    from lib.trainers.gleve import StudyTensors

    def study(i, labelled):
        t = torch.zeros(1, 4, 4, 4)
        return StudyTensors(f"s{i:02d}", t[None], t[0], t, None, (1.0, 1.0, 1.0), [], t if labelled else None, [0] if labelled else [])

    mixed = [study(i, labelled=i % 3 == 0) for i in range(12)]
    masked = [s for s in mixed if s.has_mask]
    ra, rb = random.Random(5), random.Random(5)
    for weak_per_epoch in (None, 2):
        for _ in range(4):
            a = GleveTrain.epoch_studies(mixed, weak_per_epoch, ra, include_weak=False)
            b = GleveTrain.epoch_studies(masked, None, rb)
            assert [s.image_id for s in a] == [s.image_id for s in b]
