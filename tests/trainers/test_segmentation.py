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
from lib.trainers.segmentation import CTSegmentationTrain


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


def test_each_task_trains_with_the_shared_trainer_and_its_own_kwargs(tmp_path):
    lesion = _config(LesionBaseline, "lesion_baseline", str(tmp_path)).trainer()
    cfg = _config(Anatomy, "anatomy", str(tmp_path))
    anatomy = cfg.trainer()
    assert type(lesion) is CTSegmentationTrain and type(anatomy) is CTSegmentationTrain
    assert lesion.binarize_label and lesion.num_classes == 2 and lesion.label_tag == "final"
    assert not anatomy.binarize_label and anatomy.num_classes == max(cfg.labels.values()) + 1 > 2
    assert anatomy.label_tag == "organs"
    assert "lesion" in lesion.description and "organ" in anatomy.description


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


def test_body_parts_filter_keeps_only_the_tasks_body(tmp_path):
    """lesion_baseline must not train on a chest study's finding labels; studies without truth stay."""
    import shutil

    from monailabel.datastore.local import LocalDatastore

    from lib.data.studies import generate_dataset, image_path, label_path
    from lib.trainers.segmentation import CTSegmentationTrain

    generate_dataset(str(tmp_path), [3], preset="tiny", body="both")
    # a "real" study: image + final label, no truth
    shutil.copy(image_path(str(tmp_path), "synth_00003"), image_path(str(tmp_path), "real_case"))
    shutil.copy(label_path(str(tmp_path), "synth_00003"), label_path(str(tmp_path), "real_case"))
    ds = LocalDatastore(str(tmp_path), extensions=("*.nii.gz",), auto_reload=False)
    net = torch.nn.Conv3d(1, 2, 1)
    common = dict(model_dir=str(tmp_path / "m"), network=net, labels={"lesion": 1}, target_spacing=(6, 6, 10),
                  patch_size=(16, 16, 8), roi_size=(16, 16, 8), description="t")
    only_abdomen = CTSegmentationTrain(**common, body_parts=("abdomen",)).pre_process({}, ds)
    every = CTSegmentationTrain(**common).pre_process({}, ds)
    names = lambda pairs: sorted(os.path.basename(p["image"]).split(".")[0] for p in pairs)  # noqa: E731
    assert names(only_abdomen) == ["real_case", "synth_00003"]
    assert names(every) == ["chest_00003", "real_case", "synth_00003"]
