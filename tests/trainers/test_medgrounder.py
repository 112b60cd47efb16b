"""The MedGrounder train task: stage 1 (weak anatomy boxes) and stage 2 (finding boxes) through the
datastore, what it skips and why, the validation-chosen threshold, and stage 2 starting from stage 1."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.data.studies import generate_dataset, truth_path
from lib.networks.medgrounder import MedGrounder, MedGrounderConfig
from lib.data.grounding_targets import supervised_phrase_nouns
from lib.data.studies import organ_path
from lib.trainers.medgrounder import VAL_PHRASES, MedGrounderTrain, choose_threshold, parse_stage

HASH = {"backend": "hash", "dim": 32}
SIZE = 32
CPU = {"device": "cpu", "pretrained": False, "val_interval": 1, "weak_boxes_from": "labels", "max_sentences": 8}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def datastore(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mg_train"))
    generate_dataset(root, [1, 2, 3], preset="tiny", body="chest")
    generate_dataset(root, [4], preset="tiny", body="abdomen")
    return root


def _trainer(tmp_path):
    torch.manual_seed(0)
    net = MedGrounder(MedGrounderConfig.tiny(text_encoder=HASH, image_size=SIZE))
    model_dir = os.path.join(str(tmp_path), "model")
    return MedGrounderTrain(os.path.join(model_dir, "mg"), net, SIZE, 6.0, os.path.join(model_dir, "medgrounder.pt"))


def _ds(root):
    return LocalDatastore(root, extensions=("*.nii.gz",), auto_reload=False)


def test_parse_stage():
    assert parse_stage(1) == 1 and parse_stage("pretrain") == 1 and parse_stage("2") == 2 and parse_stage("finetune") == 2
    with pytest.raises(ValueError):
        parse_stage(3)


def test_stage1_targets_from_the_structure_maps(datastore, tmp_path):
    tr = _trainer(tmp_path)
    studies, skipped = tr.load_studies(_ds(datastore), 1, {**tr.config(), **CPU})
    assert sorted(s.image_id for s in studies) == ["chest_00001", "chest_00002", "chest_00003"]
    assert skipped == {"synth_00004": "other_body"}
    for s in studies:
        assert s.image.shape == (2, SIZE, SIZE, SIZE) and len(s.texts) == len(s.targets)
        n = [len(t) for t in s.targets]
        assert 0 in n and max(n) >= 1
        for t in s.targets:
            assert ((t >= 0) & (t <= 1)).all()
        assert len(s.texts) >= tr.config()["phrases_per_study"]


def test_stage2_needs_sentence_links(datastore, tmp_path):
    root = str(tmp_path / "copy")
    generate_dataset(root, [1, 2], preset="tiny", body="chest")
    os.unlink(truth_path(root, "chest_00002"))
    tr = _trainer(tmp_path)
    studies, skipped = tr.load_studies(_ds(root), 2, {**tr.config(), **CPU})
    assert [s.image_id for s in studies] == ["chest_00001"] and skipped == {"chest_00002": "no_sentence_links"}
    # finding sentences have boxes, the rest none
    assert any(len(t) for t in studies[0].targets) and any(not len(t) for t in studies[0].targets)


def test_both_stages_publish_and_stage2_starts_from_stage1(datastore, tmp_path):
    tr = _trainer(tmp_path)
    s1 = tr({**CPU, "stage": 1, "max_epochs": 2}, _ds(datastore))
    ckpt = torch.load(tr.publish_path, map_location="cpu")
    assert ckpt["stage"] == 1 and 0 < ckpt["threshold"] < 1 and set(ckpt["model"]) == set(tr._network.state_dict())
    assert s1["key_metric_name"] == "val_mIoU" and s1["n_val"] == 1 and s1["n_train"] == 2
    assert s1["n_multi_box"] >= 1  # bilateral phrases / zones
    with open(tr.stats_path) as f:
        assert json.load(f)["epoch"] == 2
    s2 = tr({**CPU, "stage": 2, "max_epochs": 1, "pretrained": True}, _ds(datastore))
    assert s2["pretrained"] == tr.publish_path and s2["key_metric_name"] == "val_P@F1=1"
    assert s2["stage1_replay_fraction"] == 0.25 and s2["n_replay_phrases"] == 3 * tr.config()["phrase_pool"]
    assert s2["history"][-1]["val_replay_sentences"] == VAL_PHRASES  # one validation study
    assert torch.load(tr.publish_path, map_location="cpu")["stage"] == 2


def test_no_usable_study_is_a_clear_error(tmp_path):
    root = str(tmp_path / "abd")
    generate_dataset(root, [5], preset="tiny", body="abdomen")
    tr = _trainer(tmp_path)
    with pytest.raises(ValueError, match="no usable study"):
        tr({**CPU, "stage": 1, "max_epochs": 1}, _ds(root))


def test_threshold_is_chosen_by_centre_hit_f1():
    true = np.array([[0.1, 0.1, 0.1, 0.3, 0.3, 0.3]])
    good, bad = [0.1, 0.1, 0.1, 0.3, 0.3, 0.3], [0.6, 0.6, 0.6, 0.9, 0.9, 0.9]
    # the right box is confident (0.9), a wrong one middling (0.5), on a zero-box sentence a 0.3 box
    preds = [
        (np.array([good, bad]), np.array([0.9, 0.5]), true),
        (np.array([bad]), np.array([0.3]), np.zeros((0, 6))),
    ]
    t, res = choose_threshold(preds, (16, 16, 16))
    assert 0.5 < t <= 0.9
    assert res["overall"]["CH-F1"] == 1.0 and res["zero"]["N-Acc"] == 1.0


def test_stage2_caps_zero_box_sentences_in_training_and_validation(datastore, tmp_path):
    """Stage 2 sees at most 40 % zero-box sentences (PadChest-GR's share), in its steps and in the
    validation it selects checkpoints on; stage 1 keeps the report's own mix."""
    import random

    from lib.trainers.medgrounder import ZERO_BOX_FRACTION

    assert ZERO_BOX_FRACTION == {1: 1.0, 2: 0.4}
    tr = _trainer(tmp_path)
    studies, _ = tr.load_studies(_ds(datastore), 2, {**tr.config(), **CPU, "stage1_replay_fraction": 0})  # report sentences only
    s = next(s for s in studies if any(len(t) for t in s.targets))
    n_pos = sum(bool(len(t)) for t in s.targets)
    n_zero = len(s.targets) - n_pos
    assert n_zero > n_pos  # reports are mostly zero-box
    rng = random.Random(0)
    capped = tr.sample_sentences(s, 64, rng, 0, 0.4)
    zero = [i for i in capped if not len(s.targets[i])]
    assert len(capped) - len(zero) == n_pos and len(zero) == int(np.ceil(round(n_pos * 0.4 / 0.6, 6)))
    assert len(tr.sample_sentences(s, 64, rng, 0, 1.0)) == len(s.targets)  # stage 1: everything up to the cap
    preds = [(np.zeros((1, 6)), np.zeros(1), np.zeros((1 if i < 3 else 0, 6))) for i in range(20)]
    kept = tr.capped_zero_box(preds, 0.4)
    assert sum(len(p[2]) > 0 for p in kept) == 3 and sum(len(p[2]) == 0 for p in kept) == 2
    assert len(tr.capped_zero_box(preds, 1.0)) == 20


def test_stage2_replays_stage1_phrases(datastore, tmp_path):
    """Stage 2 rehearses stage 1: each study carries a pool of stage-1 side/zone phrases with their
    anatomy boxes (none with a noun a groundable report sentence uses), a step mixes in enough of
    them to make ``stage1_replay_fraction`` of its sentences, and validation's key metric stays on
    the report sentences."""
    import math
    import random

    tr = _trainer(tmp_path)
    req = {**tr.config(), **CPU}
    on, _ = tr.load_studies(_ds(datastore), 2, req)  # default share 0.25
    excluded = set(tr.replay_excluded_nouns)
    off, _ = tr.load_studies(_ds(datastore), 2, {**req, "stage1_replay_fraction": 0})
    assert [s.image_id for s in on] == [s.image_id for s in off]
    grounded = [t for s in off for t, box in zip(s.texts, s.targets) if len(box)]
    assert excluded == supervised_phrase_nouns(grounded)  # (tiny studies may ground none of the phrase nouns)
    for s, o in zip(on, off):
        assert len(o.texts) == o.n_report and s.texts[: s.n_report] == o.texts  # same report targets
        phrases = s.texts[s.n_report :]
        assert len(phrases) == req["phrase_pool"] and not supervised_phrase_nouns(phrases) & excluded
        for text, box in zip(phrases, s.targets[s.n_report :]):
            want = 0 if text.startswith("No ") else 2 if text.startswith("Bilateral") else 1
            assert len(box) == want and ((box >= 0) & (box <= 1)).all(), text
    s = on[0]
    rng = random.Random(0)
    for share in (0.25, 0.5):
        idx = tr.sample_sentences(s, 64, rng, 0, 0.4, share)
        replayed = [i for i in idx if i >= s.n_report]
        assert len(replayed) == math.ceil(round((len(idx) - len(replayed)) * share / (1 - share), 6)) > 0
        assert len(set(replayed)) == len(replayed)
    assert all(i < s.n_report for i in tr.sample_sentences(s, 64, rng, 0, 0.4, 0.0))
    row = tr.validate(tr._network, on, torch.device("cpu"), 2, 0.4)
    assert row["val_sentences"] == len(tr.capped_zero_box(tr.predict(tr._network, off, torch.device("cpu")), 0.4))
    assert row["val_replay_sentences"] == VAL_PHRASES * len(on) and 0 <= row["val_replay_mIoU"] <= 1


def test_stage2_without_a_structure_map_trains_without_replay(tmp_path):
    root = str(tmp_path / "no_organs")
    generate_dataset(root, [1], preset="tiny", body="chest")
    os.unlink(organ_path(root, "chest_00001"))
    tr = _trainer(tmp_path)
    studies, skipped = tr.load_studies(_ds(root), 2, {**tr.config(), **CPU})
    assert not skipped and len(studies) == 1 and len(studies[0].texts) == studies[0].n_report


@pytest.mark.parametrize("bad", [1.0, -0.1, "lots"])
def test_bad_replay_fraction_is_a_clear_error(datastore, tmp_path, bad):
    tr = _trainer(tmp_path)
    with pytest.raises(ValueError, match="stage1_replay_fraction"):
        tr({**CPU, "stage": 2, "max_epochs": 1, "stage1_replay_fraction": bad}, _ds(datastore))
