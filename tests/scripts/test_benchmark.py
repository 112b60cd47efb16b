"""scripts/benchmark.py: its smallest settings print every figure (slow), and its table is honest."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.scripts.loader import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "benchmark.py")


def _module():
    return load_script("benchmark.py")


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


def test_overlays_are_drawn_for_lesion_and_box_answers_only():
    bench = _module()
    assert bench.wants_overlays("gleve", {"lesions": [], "label_names": {}})
    assert bench.wants_overlays("medgrounder", {"sentences": [{"boxes": []}]})
    assert bench.wants_overlays("lesion_baseline", {"label_names": {"lesion": 1}})
    assert not bench.wants_overlays("anatomy", {"label_names": {"liver": 1}})
    assert not bench.wants_overlays("reg2rg", {"regions": [{"region": "lung", "text": "x"}]})
    assert not bench.wants_overlays("medgrounder_cxr", {"sentences": [{"boxes": []}]})  # 2D: no CT slice to draw on


def test_overlay_counts_and_failures_are_in_the_table():
    bench = _module()
    rows = [{"task": "lesion_baseline", "image": "a", "median_s": 1.0, "first_s": 1.0, "peak_rss_mb": 1.0, "gpu_peak_mb": None, "overlays": ["x.png"]},
            {"task": "gleve", "image": "a", "median_s": 1.0, "first_s": 1.0, "peak_rss_mb": 1.0, "gpu_peak_mb": None, "overlays": ["a.png", "b.png"]},
            {"task": "medgrounder", "image": "c", "median_s": 1.0, "first_s": 1.0, "peak_rss_mb": 1.0, "gpu_peak_mb": None, "overlay_error": "ValueError: x"}]
    table = bench.markdown(rows, 1.0, [{"task": "ground_all", "skipped": "no trainer"}], {})
    assert "Not trained: ground_all (no trainer)" in table and "| ground_all |" not in table
    assert "Overlay PNGs (overlays/<task>/<study>_<truth id>.png): lesion_baseline 1, gleve 2, medgrounder FAILED: ValueError: x" in table


def _drawn_colour_pixels(path: str) -> int:
    """Pixels in the truth/prediction colours: a grey CT slice has none (R = G = B)."""
    from matplotlib.image import imread

    rgb = imread(path)[..., :3]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int((((g > 0.6) & (r < 0.4) & (b < 0.4)) | ((r > 0.6) & (g < 0.4) & (b < 0.4))).sum())


@pytest.mark.slow
def test_small_settings_print_every_figure(tmp_path, capsys):
    bench = _module()
    infer_tasks, train_tasks = bench.served_tasks("all"), bench.served_tasks("all", trainers=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.run([sys.executable, SCRIPT, "--small", "--preset", "tiny", "--epochs", "2", "--parser-seconds", "0.5",
                        "--out", str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1500)
    with capsys.disabled():  # the figures, in the CI log even when the test passes
        print("\n" + p.stdout[p.stdout.find("Settings:"):])
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
    saved = json.loads((tmp_path / "benchmark.json").read_text())
    skipped = {r["task"] for r in saved["train"] if r.get("skipped") == "no trainer"}
    assert "Not trained: " in out if skipped else "Not trained" not in out
    for task in train_tasks:
        if task in skipped:  # a config whose trainer() gives none (ground_all): the app has no trainer for it
            continue
        m = re.search(rf"^\| {task} \| (\d+) \| {num} \| {num} \| (\d+) \| (-|\d+) \|$", out, re.M)
        assert m, f"no training row for {task}:\n{out[-3000:]}"
        assert int(m.group(1)) >= 2 and float(m.group(2)) > 0
    assert (tmp_path / "benchmark.md").read_text().strip() in out
    rows = {r["task"]: r for r in saved["infer"]}
    # overlay PNGs: one per true lesion / finding of the study, in the output folder, the contours and boxes drawn on the CT
    for task in ("gleve", "medgrounder", "lesion_baseline"):
        pngs = rows[task].get("overlays")
        assert pngs, rows[task]
        for png in pngs:
            assert png.startswith(str(tmp_path / "overlays" / task)) and os.path.getsize(png) > 5000
        assert all(_drawn_colour_pixels(png) > 20 for png in pngs), task
