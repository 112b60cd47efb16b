"""scripts/accuracy_table.py: a registry whose entries plug in by their script alone; the tables are
honest (model next to its baseline, the summary's difference from the rows); the small settings run
every bundled model on held-out studies (slow)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.scripts.loader import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "accuracy_table.py")


def _module():
    return load_script("accuracy_table.py")


GOOD = '''
ACCURACY_TITLE = "Fake model vs fake baseline"
ACCURACY_HEADLINE = "Acc %"
CALLS = []

def accuracy_rows(n_studies, small):
    CALLS.append((n_studies, small))
    return [
        {"model": "fake", "baseline": False, "group": "liver", "n": 3, "Acc %": 70.0, "HD95 mm": 4.25},
        {"model": "base", "baseline": True, "group": "liver", "n": 3, "Acc %": 50.0, "HD95 mm": 9.0},
        {"model": "base", "baseline": True, "group": "all", "n": 5, "Acc %": 40.0, "HD95 mm": None},
        {"model": "fake", "baseline": False, "group": "all", "n": 5, "Acc %": 62.5, "HD95 mm": float("nan")},
    ]
'''


@pytest.fixture
def table(tmp_path, monkeypatch):
    """The script with its scripts folder pointed at ``tmp_path`` and a registry of fake entries."""
    mod = _module()
    (tmp_path / "eval_good.py").write_text(GOOD)
    (tmp_path / "eval_boom.py").write_text("def accuracy_rows(n_studies, small):\n    raise RuntimeError('no boom checkpoint: train it')\n")
    (tmp_path / "eval_old.py").write_text("def main():\n    pass\n")
    monkeypatch.setattr(mod, "SCRIPTS", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("eval_good", "eval_boom", "eval_old", "eval_future"):
        sys.modules.pop(name, None)
    monkeypatch.setattr(mod, "REGISTRY", (mod.Entry("good", "eval_good"), mod.Entry("boom", "eval_boom"),
                                          mod.Entry("old", "eval_old"), mod.Entry("future", "eval_future")))
    return mod


def test_every_entry_gets_an_outcome_and_a_failure_does_not_stop_the_others(table, tmp_path, capsys):
    rc = table.main(["--small", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 1  # boom FAILED
    assert sys.modules["eval_good"].CALLS == [(2, True)]
    assert "### good: Fake model vs fake baseline" in out
    assert "FAILED: RuntimeError: no boom checkpoint: train it" in out
    assert "not available: scripts/eval_old.py has no accuracy_rows(n_studies, small)" in out
    assert "not available: scripts/eval_future.py does not exist yet" in out
    saved = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert [m["status"] for m in saved["models"]] == ["ok", "FAILED", "not available", "not available"]
    assert (tmp_path / "out" / "accuracy.md").read_text().strip() in out


def test_a_new_script_plugs_in_without_touching_the_table(table, tmp_path, capsys):
    (tmp_path / "eval_future.py").write_text(GOOD.replace("Fake model", "Future model"))
    assert table.main(["--models", "future", "--n", "4"]) == 0
    out = capsys.readouterr().out
    assert "### future: Future model vs fake baseline" in out
    assert sys.modules["eval_future"].CALLS == [(4, False)]


def test_model_sits_next_to_its_baseline_and_the_summary_is_the_difference(table, capsys):
    o = table.run_entry(table.REGISTRY[0], 2, True)
    lines = table.model_table(o.rows).splitlines()
    assert lines[0] == "| model | group | n | Acc % | HD95 mm |"
    assert lines[2:] == ["| fake | liver | 3 | 70.0 | 4.2 |", "| base (baseline) | liver | 3 | 50.0 | 9.0 |",
                         "| fake | all | 5 | 62.5 | n/a |", "| base (baseline) | all | 5 | 40.0 | n/a |"]
    summary = table.summary_table([o])
    assert "| good | fake | Acc % | 62.5 | base | 40.0 | 22.5 |" in summary


def test_headline_defaults_to_the_first_metric_and_a_model_without_baseline_says_so(table, tmp_path):
    (tmp_path / "eval_future.py").write_text(
        "def accuracy_rows(n_studies, small):\n    return [{'model': 'm', 'group': 'all', 'Dice %': 90.0}]\n")
    o = table.run_entry(table.REGISTRY[3], 1, True)
    assert o.headline == "Dice %"
    assert "| future | m | Dice % | 90.0 | (none) | n/a | n/a |" in table.summary_table([o])


def test_each_model_is_summarised_against_its_own_baseline(table, tmp_path):
    (tmp_path / "eval_future.py").write_text("""
def accuracy_rows(n_studies, small):
    return [{"model": "mg", "baseline": False, "group": "all", "P %": 70.0},
            {"model": "mg_cxr", "baseline": False, "group": "all", "P %": 76.0},
            {"model": "mg top-1", "baseline": True, "group": "all", "P %": 2.0},
            {"model": "mg_cxr top-1", "baseline": True, "group": "all", "P %": 6.0}]
""")
    summary = table.summary_table([table.run_entry(table.REGISTRY[3], 1, True)])
    assert "| future | mg | P % | 70.0 | mg top-1 | 2.0 | 68.0 |" in summary
    assert "| future | mg_cxr | P % | 76.0 | mg_cxr top-1 | 6.0 | 70.0 |" in summary


def test_unknown_model_is_refused(table):
    with pytest.raises(SystemExit):
        table.main(["--models", "nope"])


def test_every_existing_registered_script_exposes_the_interface():
    mod = _module()
    for entry in mod.REGISTRY:
        path = os.path.join(ROOT, "scripts", f"{entry.module}.py")
        if not os.path.isfile(path):
            continue  # a model still being written
        assert re.search(r"^def accuracy_rows\(n_studies: int, small: bool\)", open(path).read(), re.M), path


@pytest.mark.slow
def test_small_settings_score_every_available_model_on_heldout_studies(tmp_path, capsys):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.run([sys.executable, SCRIPT, "--small", "--n", "1", "--out", str(tmp_path)], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=1500)
    with capsys.disabled():  # the figures, in the CI log even when the test passes
        print("\n" + p.stdout)
    saved = json.loads((tmp_path / "accuracy.json").read_text())
    by_name = {m["name"]: m for m in saved["models"]}
    mod = _module()
    for entry in mod.REGISTRY:
        if not os.path.isfile(os.path.join(ROOT, "scripts", f"{entry.module}.py")):
            assert by_name[entry.name]["status"] == "not available"
        elif os.path.isfile(os.path.join(ROOT, "apps", "radground", "model", f"pretrained_{entry.name}.pt")):
            assert by_name[entry.name]["status"] == "ok", by_name[entry.name]
            assert by_name[entry.name]["rows"] and f"### {entry.name}: " in p.stdout
        else:  # a model whose weights are not bundled yet: a clear FAILED row, the others still scored
            assert by_name[entry.name]["status"] == "FAILED" and "checkpoint" in by_name[entry.name]["message"], by_name[entry.name]
    assert p.returncode == (1 if any(m["status"] == "FAILED" for m in saved["models"]) else 0), (p.stdout[-3000:], p.stderr[-3000:])
    # the lesion table has GLeVE and its report-blind baseline on the same organ groups, figures in range
    rows = by_name["gleve"]["rows"]
    assert {r["model"] for r in rows} == {"gleve", "lesion_baseline"}
    assert {r["group"] for r in rows if r["model"] == "gleve"} == {r["group"] for r in rows if r["model"] == "lesion_baseline"}
    for r in rows:
        assert r["Dice %"] is None or 0.0 <= r["Dice %"] <= 100.0
    assert all(0.0 <= r["Dice %"] <= 100.0 for r in by_name["anatomy"]["rows"])
    assert "### Summary" in p.stdout and re.search(r"^\| gleve \| gleve \| Dice % \|", p.stdout, re.M)
