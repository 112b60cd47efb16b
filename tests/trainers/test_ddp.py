"""GLeVE's DDP path on the CPU: gloo, two processes, one epoch on three small studies."""
from __future__ import annotations

import os
import tempfile

import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.configs.gleve import Gleve
from lib.data.studies import generate_dataset
from lib.trainers.ddp import DistributedGleveTrain, world_size

pytestmark = pytest.mark.slow


def test_world_size_from_request():
    assert world_size({"world_size": 3}) == 3
    assert world_size({"gpus": "0,2"}) == 2
    assert world_size({"gpus": "all"}) == torch.cuda.device_count()


def test_two_gloo_processes_train_one_model(tmp_path):
    studies = str(tmp_path / "studies")
    generate_dataset(studies, [20000, 20001, 20005], preset="small", report_only_fraction=[20001])
    cfg = Gleve()
    cfg.init("gleve", str(tmp_path / "model"), {}, None)
    trainer = cfg.trainer()
    assert isinstance(trainer, DistributedGleveTrain) and trainer.config()["multi_gpu"] is True
    ds = LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False)
    before = {k: v.clone() for k, v in torch.load(cfg.path[0], map_location="cpu")["model"].items()}
    scratch = lambda: {d for d in os.listdir(tempfile.gettempdir()) if d.startswith("gleve_rank")}
    scratch_before = scratch()
    parent = {k: v.clone() for k, v in trainer._network.state_dict().items()}
    stats = trainer({"multi_gpu": True, "world_size": 2, "device": "cpu", "max_epochs": 1, "val_split": 0.0}, ds)
    assert stats["world_size"] == 2 and stats["distributed_backend"] == "gloo"
    assert stats["n_train_per_rank"] == [2, 2]  # 3 studies, padded to an even split
    a, b = stats["rank_param_sums"]
    assert a == pytest.approx(b, rel=1e-9, abs=1e-9)  # gradients averaged: one model on both ranks
    published = torch.load(cfg.path[1], map_location="cpu")["model"]
    names = [n for n, _ in trainer._network.named_parameters()]
    assert a == pytest.approx(sum(float(published[n].double().sum()) for n in names), rel=1e-9, abs=1e-9)
    # each rank trains a private copy: spawn's shared-memory tensors once had both ranks step one storage
    assert all(torch.equal(v, parent[k]) for k, v in trainer._network.state_dict().items())
    assert set(published) == set(before)  # plain GLeVE keys (no DDP 'module.' prefix)
    assert any(not torch.equal(published[k], before[k]) for k in before if before[k].is_floating_point())
    assert os.path.exists(os.path.join(str(tmp_path / "model"), "gleve", "train_stats.json"))
    assert scratch() <= scratch_before  # rank 1's scratch folder is removed
