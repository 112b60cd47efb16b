"""scripts/benchmark.py: its smallest settings print every figure (slow), and its table is honest."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "benchmark.py")


def _module():
    spec = importlib.util.spec_from_file_location("radground_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_table_ratios_are_relative_to_the_baseline_and_failures_are_shown():
    bench = _module()
    rows = [
        {"task": "lesion_baseline", "image": "a", "median_s": 2.0, "first_s": 3.0, "peak_rss_mb": 900.0, "gpu_peak_mb": None},
        {"task": "gleve", "image": "a", "median_s": 5.0, "first_s": 9.0, "peak_rss_mb": 1200.0, "gpu_peak_mb": 512.0},
        {"task": "reg2rg", "error": "exit 1: boom"},
    ]
    table = bench.markdown(rows, 123.4, [{"task": "gleve", "steps": 4, "steps_per_s": 0.5, "total_s": 9.0, "peak_rss_mb": 1000.0, "gpu_peak_mb": None}], {})
    assert re.search(r"\| lesion_baseline \| a \| 2\.000 \| 3\.000 \| 1\.00 \| 900 \| - \|", table)
    assert re.search(r"\| gleve \| a \| 5\.000 \| 9\.000 \| 2\.50 \| 1200 \| 512 \|", table)
    assert "| reg2rg | FAILED: exit 1: boom" in table
    assert "Report parser: 123.4 reports/s" in table
    assert re.search(r"\| gleve \| 4 \| 0\.500 \| 9\.0 \|", table)


def test_fewer_than_five_runs_is_refused():
    with pytest.raises(SystemExit):
        _module().main(["--runs", "3"])


@pytest.mark.slow
def test_small_settings_print_every_figure(tmp_path):
    bench = _module()
    infer_tasks, train_tasks = bench.served_tasks("all"), bench.served_tasks("all", trainers=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.run([sys.executable, SCRIPT, "--small", "--preset", "tiny", "--epochs", "2", "--parser-seconds", "0.5",
                        "--out", str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1500)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    out = p.stdout
    num = r"(\d+\.\d+)"
    for task in infer_tasks:
        m = re.search(rf"^\| {task} \| \w+ \| {num} \| {num} \| {num} \| (\d+) \| (-|\d+) \|$", out, re.M)
        assert m, f"no latency row for {task}:\n{out[-3000:]}"
        assert float(m.group(1)) > 0 and int(m.group(4)) > 100  # seconds, and a torch process is > 100 MB
        if task == "lesion_baseline":
            assert m.group(3) == "1.00"
    rps = re.search(rf"Report parser: {num} reports/s", out)
    assert rps and float(rps.group(1)) > 0
    for task in train_tasks:
        m = re.search(rf"^\| {task} \| (\d+) \| {num} \| {num} \| (\d+) \| (-|\d+) \|$", out, re.M)
        assert m, f"no training row for {task}:\n{out[-3000:]}"
        assert int(m.group(1)) >= 2 and float(m.group(2)) > 0
    assert (tmp_path / "benchmark.md").read_text().strip() in out
    assert (tmp_path / "benchmark.json").exists()
