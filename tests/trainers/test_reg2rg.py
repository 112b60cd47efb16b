"""The ``reg2rg`` train task: which studies it trains on, RRA shuffling, and a short run that publishes a loadable checkpoint."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.data.region_reports import REGION_NAMES, build_prompt, build_target, parse_generated
from lib.data.studies import generate_dataset, region_path, truth_path
from lib.networks.reg2rg import Reg2RG, Reg2RGConfig
from lib.networks.reg2rg.tokenizer import train_bpe_tokenizer
from lib.trainers.reg2rg import Reg2RGTrain, example

SMALL = dict(
    image_size=(16, 16, 8), patch_size=(8, 8, 4), vis_dim=32, vis_layers=1, vis_heads=2, vis_mlp=32, n_visual_tokens=4,
    perceiver_heads=2, mask_size=(16, 16, 8), mask_patch_size=(8, 8, 8), geo_dim=16, geo_heads=2, geo_mlp=16,
    lm_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2},
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("reg2rg_train") / "studies")
    generate_dataset(root, [0, 1, 2], preset="tiny", body="chest")
    generate_dataset(root, [3], preset="tiny", body="abdomen")
    os.unlink(region_path(root, "chest_00002"))  # only the structure map: regions merged from it
    os.unlink(truth_path(root, "chest_00002"))  # no truth: targets from the report's region sections
    return root


def _net(**kw) -> Reg2RG:
    torch.manual_seed(0)
    texts = [build_target(["lung", "heart"], {"lung": "The lungs are clear.", "heart": "Cardiomegaly."}), build_prompt(10)]
    return Reg2RG(Reg2RGConfig(**{**SMALL, **kw}), train_bpe_tokenizer(texts * 5, vocab_size=300))


def _trainer(tmp_path, net=None) -> Reg2RGTrain:
    return Reg2RGTrain(model_dir=str(tmp_path / "m"), network=net or _net(), publish_path=str(tmp_path / "reg2rg.pt"), load_path=None)


def test_datalist_takes_chest_studies_with_region_reports(studies, tmp_path):
    trainer = _trainer(tmp_path)
    entries, skipped = trainer.datalist(LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False))
    assert [e["image_id"] for e in entries] == ["chest_00000", "chest_00001", "chest_00002"]
    assert skipped == {"synth_00003": "other_body"}
    by_id = {e["image_id"]: e for e in entries}
    assert by_id["chest_00000"]["label_kind"] == "regions" and by_id["chest_00002"]["label_kind"] == "organs"
    assert set(by_id["chest_00002"]["reports"]) == set(REGION_NAMES)  # the parser found every region section
    s = trainer.load_study(by_id["chest_00002"])
    assert s.inputs.names == [r for r in REGION_NAMES if r in s.inputs.names] and len(s.inputs.names) >= 8


def test_rra_examples_shuffle_regions_with_their_features(studies, tmp_path):
    trainer = _trainer(tmp_path)
    entries, _ = trainer.datalist(LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False))
    study = trainer.load_study(entries[0])
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(6):
        ids, labels, inputs = example(trainer._network, study, rng)
        seen.add(tuple(inputs.names))
        target = trainer._network.tokenizer.decode(ids[labels != -100], skip_special_tokens=True)
        parsed = parse_generated(target)
        # the i-th prefix names the i-th region fed to the model, whose crop is the study's crop of that region
        assert [g.recognised_area for g in parsed] == inputs.names
        for i, name in enumerate(inputs.names):
            assert torch.equal(inputs.crops[i], study.inputs.crops[study.inputs.names.index(name)])
            assert parsed[i].text == study.reports[name]
    assert len(seen) > 1
    glb = _trainer(tmp_path, _net(use_texture=False, use_geometry=False))
    _, _, inputs = example(glb._network, study, rng)
    assert inputs.names == study.inputs.names  # GLB only: canonical order, nothing to refer to


def test_short_run_publishes_a_loadable_checkpoint_and_stats(studies, tmp_path):
    net = _net()
    trainer = _trainer(tmp_path, net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    stats = trainer({"max_epochs": 2, "val_split": 0.34, "learning_rate": 1e-3, "device": "cpu"}, LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False))
    assert (stats["n_train"], stats["n_val"]) == (2, 1) and len(stats["history"]) == 2
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in stats["history"])
    ckpt = torch.load(str(tmp_path / "reg2rg.pt"), map_location="cpu")
    assert Reg2RGConfig.from_dict(ckpt["config"]) == net.config
    fresh = _net()
    fresh.load_state_dict(ckpt["model"])
    changed = [k for k, v in ckpt["model"].items() if not torch.equal(v, before[k])]
    assert any("lora_" in k for k in changed) and any(k.startswith("visual.") for k in changed)
    assert not any(k.startswith("lm.") and "lora_" not in k for k in changed)  # the base LM stays frozen
    with open(os.path.join(str(tmp_path / "m"), "train_stats.json")) as f:
        assert json.load(f)["best_metric"] == stats["best_metric"]


def test_nothing_to_train_on_is_an_error(tmp_path):
    root = str(tmp_path / "abd")
    generate_dataset(root, [5], preset="tiny", body="abdomen")
    with pytest.raises(ValueError, match="no chest study"):
        _trainer(tmp_path)({"max_epochs": 1, "device": "cpu"}, LocalDatastore(root, extensions=("*.nii.gz",), auto_reload=False))


def test_one_prompt_per_region_loss_matches_the_single_prompts(studies, tmp_path):
    """``joint_regions`` off: the batched per-region loss is the token-weighted mean of each region's own prompt loss."""
    from lib.data.region_reports import encode_example
    from lib.trainers.reg2rg import study_loss

    net = _net(joint_regions=False)
    net.eval()
    trainer = _trainer(tmp_path, net)
    entries, _ = trainer.datalist(LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False))
    s = trainer.load_study(entries[0])
    with torch.no_grad():
        batched = study_loss(net, s, None, "cpu")
        total, count = 0.0, 0
        for j, name in enumerate(s.inputs.names):
            ids, labels = encode_example(net.tokenizer, build_prompt(1), build_target([name], s.reports))
            n = int((labels[1:] != -100).sum())
            total += float(net(ids, labels, s.inputs.global_volume.float(), s.inputs.crops[j : j + 1].float(), s.inputs.masks[j : j + 1].float())) * n
            count += n
    assert float(batched) == pytest.approx(total / count, rel=1e-4)


def test_keep_probability_balances_normal_and_abnormal_reports_per_region():
    from lib.trainers.reg2rg import keep_probability

    for rate in (0.05, 0.3, 0.5, 0.73, 0.95):
        p_abn, p_norm = keep_probability(rate, True, 0.25), keep_probability(rate, False, 0.0)
        assert rate * p_abn == pytest.approx((1 - rate) * p_norm)  # as many abnormal as normal reports trained on
        assert max(p_abn, p_norm) == 1.0  # the rarer kind is always kept
    assert keep_probability(0.0, False, 0.25) == 0.25 and keep_probability(0.05, False, 0.25) == 0.25  # the floor


def test_balanced_sampling_keeps_the_rare_kind_and_thins_the_common_one(studies, tmp_path):
    from lib.metrics.report_generation import finding_labels
    from lib.trainers.reg2rg import abnormal_rates, balanced_regions

    trainer = _trainer(tmp_path)
    entries, _ = trainer.datalist(LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False))
    study = trainer.load_study(entries[0])
    abnormal = [r for r in study.inputs.names if finding_labels(study.reports[r], r)]
    assert abnormal and study.abnormal == abnormal and len(abnormal) < len(study.inputs.names)
    rates = abnormal_rates([study])
    assert all(rates[r] == (1.0 if r in abnormal else 0.0) for r in study.inputs.names)
    rates = {r: (0.9 if r == abnormal[0] else 0.2) for r in study.inputs.names}  # abnormal[0]: usually abnormal
    rng = np.random.default_rng(0)
    counts = {r: 0 for r in study.inputs.names}
    for _ in range(400):
        sub = balanced_regions(study, rng, 0.1, rates)
        assert sub.inputs.names == [r for r in study.inputs.names if r in sub.inputs.names]  # canonical order, features follow
        for i, name in enumerate(sub.inputs.names):
            assert torch.equal(sub.inputs.crops[i], study.inputs.crops[study.inputs.names.index(name)])
            assert sub.reports[name] == study.reports[name]
            counts[name] += 1
    assert 400 * 0.11 * 0.6 < counts[abnormal[0]] < 400 * 0.11 * 1.5  # common kind thinned to (1 - 0.9) / 0.9
    assert all(counts[r] == 400 for r in abnormal[1:])  # rare kind: always
    normal = [r for r in study.inputs.names if r not in abnormal]
    assert all(400 * 0.25 * 0.6 < counts[r] < 400 * 0.25 * 1.5 for r in normal)  # 0.2 / 0.8
    assert balanced_regions(study, rng, 1.0, rates) is study


def test_selection_by_finding_f1_generates_validation_reports(studies, tmp_path):
    net = _net(joint_regions=False)
    trainer = _trainer(tmp_path, net)
    ds = LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False)
    stats = trainer({"max_epochs": 1, "val_split": 0.34, "device": "cpu", "select_by": "finding_f1", "normal_region_keep": 0.3, "max_new_tokens": 4}, ds)
    row = stats["history"][0]
    assert stats["key_metric_name"] == "finding_f1" and stats["normal_region_keep"] == 0.3
    assert set(row["val_finding"]) == {"precision", "recall", "f1"} and stats["best_metric"] == row["val_finding"]["f1"]
    assert os.path.exists(str(tmp_path / "reg2rg.pt"))
    with pytest.raises(ValueError, match="select_by"):
        trainer({"max_epochs": 1, "device": "cpu", "select_by": "bleu"}, ds)
    with pytest.raises(ValueError, match="normal_region_keep"):
        trainer({"max_epochs": 1, "device": "cpu", "normal_region_keep": 0}, ds)
