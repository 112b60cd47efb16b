"""scripts/gleve_weak_supervision.py (000 Table 1): both arms start from the same weights, see the
same masks for the same epochs, and only the "+ reports" arm trains report-only studies (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.scripts.loader import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "gleve_weak_supervision.py")


def _script():
    return load_script("gleve_weak_supervision.py")


def test_the_masks_alone_arm_shares_the_grids_lambda_weak():
    """The two arms differ only by the report-only studies: a lambda_weak every '+ reports' arm has is
    the masks-alone arm's too (eq. 8 weighs L_weak on masked studies); a grid of several is not."""
    mod = _script()
    plan, name = mod.plan_arms, mod.arm_name
    arms = plan("0", "", "1")
    assert arms == [(True, {"lambda_weak": 0.0, "lambda_weak_pseudo": 1.0}), (False, {"lambda_weak": 0.0})]
    assert [name(0.1, w, k) for w, k in arms] == ["10% masks + reports (lambda_weak 0, lambda_weak_pseudo 1)", "10% masks alone (lambda_weak 0)"]
    assert plan("", "1", "0,1")[-1] == (False, {})  # the config's lambda_weak in every arm
    assert plan("0,0.01", "", "")[-1] == (False, {})  # no single value to share: the config's
    assert plan("0", "", "1", with_reports=False) == [(False, {"lambda_weak": 0.0})]
    assert [w for w, _ in plan("0", "", "1,2", alone=False)] == [True, True]


@pytest.mark.slow
def test_smallest_run_compares_the_same_masks_with_and_without_reports(tmp_path):
    out = str(tmp_path / "weak.json")
    args = ["--ratios", "0.5", "--n", "8", "--epochs", "2", "--val-interval", "1", "--weak-per-epoch", "1",
            "--n-test", "2", "--preset", "tiny", "--threads", "1", "--work", str(tmp_path / "w"), "--json", out,
            "--lambda-weak-response", "1", "--lambda-weak-pseudo", "1"]  # the optional weak terms run too
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.load(open(out))
    weak, alone = data["arms"]
    name = "50% masks + reports (lambda_weak_response 1, lambda_weak_pseudo 1)"
    assert weak["arm"] == name and alone["arm"] == "50% masks alone"
    assert weak["init_checksum"] == alone["init_checksum"]  # the same initial weights
    assert alone["n_weak"] == 0 and weak["n_weak"] >= 1
    masked = alone["n_train"]  # the masks-alone arm trains exactly the masked studies
    assert weak["n_train"] == masked + weak["n_weak"] and weak["n_val"] == alone["n_val"]
    assert alone["steps"] == 2 * masked and weak["steps"] == 2 * (masked + 1)  # 1 report-only study per epoch
    assert set(data["tables"]) == {name, "50% masks alone"}
    assert f"| {name} |" in res.stdout and "| 50% masks alone |" in res.stdout
