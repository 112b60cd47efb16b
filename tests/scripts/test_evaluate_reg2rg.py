"""scripts/evaluate_reg2rg.py's command line and report: a malformed ``--conf`` or a
``--glb-model-dir`` without its checkpoint is a usage error (exit 2 and a message) before any model
loads, not a bare traceback; extra GLB-only arms are named, scored and printed beside the two models."""
from __future__ import annotations

import sys

import pytest

from tests.scripts.loader import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("evaluate_reg2rg.py")


@pytest.mark.parametrize("bad", ["reg2rg_histogram_token", "=true", " =x"])
def test_malformed_conf_is_a_usage_error(script, bad, monkeypatch, capsys):
    monkeypatch.setattr(script, "evaluate", lambda *a, **k: pytest.fail("models loaded despite a bad --conf"))
    monkeypatch.setattr(sys, "argv", ["evaluate_reg2rg.py", "--conf", bad])
    with pytest.raises(SystemExit) as exit_:
        script.main()
    assert exit_.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_conf_pairs_parse_to_key_and_value(script):
    assert script.conf_pair("reg2rg_histogram_token=false") == ("reg2rg_histogram_token", "false")
    assert script.conf_pair(" a = b=c ") == ("a", "b=c")


def test_conf_reaches_the_evaluation(script, monkeypatch):
    seen = {}

    def fake_evaluate(n, preset, max_new_tokens, **kw):
        seen.update(kw["conf"])
        raise SystemExit(0)

    monkeypatch.setattr(script, "evaluate", fake_evaluate)
    monkeypatch.setattr(sys, "argv", ["evaluate_reg2rg.py", "--conf", "reg2rg_histogram_token=false", "--conf", "k=v"])
    with pytest.raises(SystemExit):
        script.main()
    assert seen == {"reg2rg_histogram_token": "false", "k": "v"}


def test_extra_glb_folders_become_named_arms_after_both_models(script, tmp_path):
    a, b = tmp_path / "budget_fair", tmp_path / "other"
    for d in (a, b):
        d.mkdir()
        (d / script.GLB_CHECKPOINT).write_bytes(b"")
    arms = script.model_arms(None, [str(a), str(b) + "/"])
    assert [x[0] for x in arms] == [script.FULL, script.GLB, f"{script.GLB} (budget_fair)", f"{script.GLB} (other)"]
    assert [x[1] for x in arms] == ["txt,geo,glb", "glb", "glb", "glb"]
    assert [x[2] for x in arms] == [None, None, str(a), str(b) + "/"]


def test_an_extra_glb_folder_without_the_checkpoint_is_refused(script, tmp_path, monkeypatch, capsys):
    """Without the file the infer task would silently score the bundled GLB-only model under the new name."""
    with pytest.raises(FileNotFoundError):
        script.model_arms(None, [str(tmp_path)])
    monkeypatch.setattr(script, "evaluate", lambda *a, **k: pytest.fail("models loaded despite a bad --glb-model-dir"))
    monkeypatch.setattr(sys, "argv", ["evaluate_reg2rg.py", "--glb-model-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        script.main()
    assert exit_.value.code == 2
    assert script.GLB_CHECKPOINT in capsys.readouterr().err


def test_two_extra_glb_folders_with_one_name_are_refused(script, tmp_path):
    for d in (tmp_path / "x" / "model", tmp_path / "y" / "model"):
        d.mkdir(parents=True)
        (d / script.GLB_CHECKPOINT).write_bytes(b"")
    with pytest.raises(ValueError):
        script.model_arms(None, [str(tmp_path / "x" / "model"), str(tmp_path / "y" / "model")])


def test_the_report_prints_every_arm(script, capsys):
    """print_report takes its columns from the results, so a third arm is printed, not dropped."""
    from lib.data.region_reports import REGION_NAMES

    def fake(tp):
        cell = {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": tp, "fp": 1, "fn": 1}
        return {
            "nlg": {k: 0.1 for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L")},
            "ce": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "per_label": {"lung nodule": cell}},
            "recognition": {r: {"precision": 1.0, "recall": 1.0, "f1": 1.0} for r in REGION_NAMES},
            "findings": {r: cell for r in [*REGION_NAMES, "all"]},
            "examples": [("chest_20000", "truth text", f"text {tp}")],
            "study_counts": [[tp, 1, 1], [0, 0, 1], [1, 0, 0]],
        }

    third = f"{script.GLB} (budget_fair)"
    script.print_report({script.FULL: fake(7), script.GLB: fake(5), third: fake(3)}, 1, "small", [20000])
    out = capsys.readouterr().out
    assert f"{third} P / R / F1" in out
    assert "(3/1/1)" in out and "(7/1/1)" in out
    assert f"{third}: text 3" in out
