"""The ``segdetexplain`` train task: datastore samples, a short run publishing a loadable
checkpoint and stats, starting from earlier weights, and the error when nothing can be trained on."""
from __future__ import annotations

import json
import os

import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.data.studies import generate_dataset, organ_path
from lib.networks.segdetexplain import SegDetExplain, SegDetExplainConfig
from lib.trainers.segdetexplain import SegDetExplainTrain

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sde_train") / "studies")
    generate_dataset(root, [0, 1], preset="tiny")
    generate_dataset(root, [2], preset="tiny", body="chest")
    generate_dataset(root, [3], preset="tiny", report_only_fraction=1.0)  # no lesion label: organs only
    generate_dataset(root, [4], preset="tiny")
    os.unlink(organ_path(root, "synth_00004"))  # no organ map: nothing to learn from
    return root


def _ds(root):
    return LocalDatastore(root, extensions=("*.nii.gz",), auto_reload=False)


def _trainer(tmp_path, load_path=None):
    cfg = SegDetExplainConfig.tiny(image_size=64, max_new_tokens=8)
    return SegDetExplainTrain(model_dir=str(tmp_path / "m"), cfg=cfg, publish_path=str(tmp_path / "segdetexplain.pt"), load_path=load_path)


def test_datalist_takes_abdominal_studies_with_organ_maps(studies, tmp_path):
    entries, skipped = _trainer(tmp_path).datalist(_ds(studies))
    assert [e["image_id"] for e in entries] == ["synth_00000", "synth_00001", "synth_00003"]
    assert entries[2]["lesions"] is None and entries[0]["lesions"] is not None
    assert skipped == {"chest_00002": "other_body", "synth_00004": "no_organ_map"}


def test_short_run_publishes_a_loadable_checkpoint_then_continues_from_it(studies, tmp_path):
    trainer = _trainer(tmp_path)
    stats = trainer({"max_epochs": 1, "val_split": 0.34, "batch_size": 8}, _ds(studies))
    assert stats["n_studies"] == 3 and stats["n_val"] > 0 and stats["best_metric_epoch"] == 1
    ckpt = torch.load(trainer.publish_path, map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1 and ckpt["metric"] == pytest.approx(stats["best_metric"])
    model = SegDetExplain.from_checkpoint(ckpt["model"])
    assert model.cfg.image_size == 64
    with open(trainer.stats_path) as f:
        assert json.load(f)["epochs"][0]["train_loss"] > 0
    again = _trainer(tmp_path / "again", load_path=trainer.publish_path)
    stats2 = again({"max_epochs": 1, "val_split": 0.0, "pretrained": True}, _ds(studies))
    assert stats2["started_from"] == trainer.publish_path


def test_nothing_to_train_on_is_an_error(tmp_path):
    root = str(tmp_path / "empty")
    generate_dataset(root, [2], preset="tiny", body="chest")
    with pytest.raises(ValueError, match="no abdominal study"):
        _trainer(tmp_path)({"max_epochs": 1}, _ds(root))
