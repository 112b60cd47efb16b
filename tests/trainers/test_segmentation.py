"""The shared segmentation trainer: which labels it trains on, and one real epoch per task type."""
from __future__ import annotations

import json
import os

import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.configs.anatomy import Anatomy
from lib.configs.lesion_baseline import LesionBaseline
from lib.data.studies import generate_dataset


@pytest.fixture(scope="module")
def datastore(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ds"))
    generate_dataset(root, [1, 2, 3], preset="tiny", report_only_fraction={3})
    return LocalDatastore(root, extensions=("*.nii.gz",), auto_reload=False)


def _config(cls, name, model_dir):
    cfg = cls()
    cfg.init(name, model_dir, {}, None)
    return cfg


def test_lesion_training_uses_final_labels_and_anatomy_uses_organ_maps(datastore, tmp_path):
    lesion = _config(LesionBaseline, "lesion_baseline", str(tmp_path)).trainer().pre_process({}, datastore)
    organs = _config(Anatomy, "anatomy", str(tmp_path)).trainer().pre_process({}, datastore)
    assert len(lesion) == 2  # the report-only study has no final label
    assert all("/labels/final/" in d["label"] for d in lesion)
    assert len(organs) == 3 and all("/labels/organs/" in d["label"] for d in organs)


@pytest.mark.slow
@pytest.mark.parametrize("cls, name", [(Anatomy, "anatomy"), (LesionBaseline, "lesion_baseline")])
def test_one_epoch_trains_and_publishes(datastore, tmp_path, cls, name):
    cfg = _config(cls, name, str(tmp_path))
    cfg.path = [os.path.join(str(tmp_path), "none.pt"), os.path.join(str(tmp_path), f"{name}.pt")]
    trainer = cfg.trainer()
    trainer._load_path = None  # from random weights, not the bundled checkpoint
    stats = trainer({"max_epochs": 1, "val_split": 0.34, "dataset": "Dataset", "device": "cpu", "pretrained": False}, datastore)
    assert stats["total_epochs"] == 1
    state = torch.load(os.path.join(str(tmp_path), f"{name}.pt"), map_location="cpu")
    out_channels = max(cfg.labels.values()) + 1
    last_bias = [v for k, v in state.items() if k.endswith("bias")][-1]
    assert last_bias.shape[0] == out_channels
