"""The medvolr1 train task: SFT then GRPO (and a reward ablation) through MONAI Label's interface,
on three tiny synthetic studies; each stage publishes a checkpoint the infer task can load."""
import os

import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.configs.medvolr1 import VARIANTS, vlm_config
from lib.networks.medvolr1.checkpoint import load_system_file
from lib.trainers.medvolr1 import MedVolR1Train, reward_weights

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    from lib.data.studies import generate_dataset

    root = tmp_path_factory.mktemp("mvtrain") / "studies"
    generate_dataset(str(root), [0, 1, 2], preset="tiny", report_only_fraction=0.0)
    return str(root)


def trainer(tmp_path, load_path=None):
    settings = VARIANTS["tiny"]
    return MedVolR1Train(str(tmp_path / "work"), settings, lambda: vlm_config(settings, {}), str(tmp_path / "medvolr1.pt"), load_path)


def store(studies):
    return LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False)


def test_reward_ablation_switches():
    assert reward_weights("") == {"f": 1.0, "a": 1.0, "s": 1.0, "c": 1.0}
    assert reward_weights("c") == {"f": 1.0, "a": 1.0, "s": 1.0, "c": 0.0}
    assert reward_weights("R_s, a")["s"] == 0.0
    with pytest.raises(ValueError):
        reward_weights("x")


def test_grpo_without_sft_is_refused(studies, tmp_path):
    with pytest.raises(ValueError, match="SFT"):
        trainer(tmp_path)({"stage": "grpo"}, store(studies))


def test_unknown_stage_is_refused(studies, tmp_path):
    with pytest.raises(ValueError, match="stage"):
        trainer(tmp_path)({"stage": "rl"}, store(studies))


@pytest.mark.slow
def test_sft_then_grpo_publish_loadable_checkpoints(studies, tmp_path):
    t = trainer(tmp_path)
    torch.manual_seed(0)
    s1 = t({"stage": "sft", "sft_epochs": 1, "propagator_epochs": 1, "val_split": 0.34}, store(studies))
    assert s1["stage"] == "sft" and s1["n_train_queries"] > 0 and s1["n_val_queries"] > 0
    assert len(s1["sft_loss"]) == 1 and len(s1["propagator_loss"]) == 1
    assert s1["validation"]["n"] == s1["n_val_queries"]
    policy, prop, ckpt = load_system_file(t.publish_path)
    assert ckpt["stage"] == "sft" and policy.n_slices == VARIANTS["tiny"]["n_slices"]
    assert os.path.exists(t.stats_path) and t.stats()["stage"] == "sft"

    s2 = t({"stage": "grpo", "grpo_steps": 2, "group_size": 2, "reward_without": "c", "val_split": 0}, store(studies))
    assert s2["started_from"] == t.publish_path and "propagator_loss" not in s2
    assert len(s2["grpo"]) == 2 and s2["reward_weights"]["c"] == 0.0
    assert all(r["R_c"] == 0.0 for r in s2["grpo"])  # the ablated term is never computed
    assert load_system_file(t.publish_path)[2]["stage"] == "grpo"


def test_no_study_with_a_structure_map_is_an_error(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(ValueError, match="structure map"):
        trainer(tmp_path)({"stage": "sft"}, store(str(root)))
