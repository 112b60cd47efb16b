#!/usr/bin/env python
"""Dice of the ``anatomy`` task on held-out synthetic studies (seeds never used in training):
per abdominal organ on abdominal CT, per Reg2RG region (structures merged by region) on chest CT.

    .venv/bin/python scripts/evaluate_anatomy.py --n 6 --preset default
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import nibabel as nib
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "apps", "radground"))

from lib.anatomy.labels import ABDOMEN_ORGANS, REGION_IDS, region_map  # noqa: E402
from lib.data.studies import organ_path, region_path  # noqa: E402
from lib.metrics.segmentation import dice  # noqa: E402
from scripts_common import heldout_studies, infer_task  # noqa: E402


def _predict(task, studies: str, sid: str) -> np.ndarray:
    label_file, _ = task({"image": os.path.join(studies, f"{sid}.nii.gz"), "device": "cpu", "no_cache": True})
    pred = np.asarray(nib.load(label_file).dataobj)
    os.remove(label_file)
    return pred


def _mean_table(per: dict[str, list[float]]) -> dict[str, float]:
    table = {k: float(np.mean(v)) for k, v in per.items() if v}
    table["mean"] = float(np.mean(list(table.values())))
    return table


def evaluate(n: int, preset: str, conf: dict | None = None) -> dict[str, dict[str, float]]:
    """{'abdomen': Dice per organ + 'mean', 'chest': Dice per region + 'mean'} over ``n`` held-out seeds of each body part."""
    task = infer_task("anatomy", conf or {})
    studies, seeds = heldout_studies(n, preset, prefix="radground_anatomy_eval_", body="both")
    per_organ: dict[str, list[float]] = {k: [] for k in ABDOMEN_ORGANS}
    per_region: dict[str, list[float]] = {k: [] for k in REGION_IDS}
    for seed in seeds:
        sid = f"synth_{seed:05d}"
        pred, gt = _predict(task, studies, sid), np.asarray(nib.load(organ_path(studies, sid)).dataobj)
        for name, oid in ABDOMEN_ORGANS.items():
            if (gt == oid).any():
                per_organ[name].append(dice(pred == oid, gt == oid))
        sid = f"chest_{seed:05d}"
        pred, gt = region_map(_predict(task, studies, sid)), np.asarray(nib.load(region_path(studies, sid)).dataobj)
        for name, rid in REGION_IDS.items():
            if (gt == rid).any():
                per_region[name].append(dice(pred == rid, gt == rid))
    shutil.rmtree(studies, ignore_errors=True)
    return {"abdomen": _mean_table(per_organ), "chest": _mean_table(per_region)}


#: issue 10's accuracy table (scripts/accuracy_table.py)
ACCURACY_TITLE = "Anatomy prior: Dice per abdominal organ and per Reg2RG chest region (no baseline model)"
ACCURACY_HEADLINE = "Dice %"


def accuracy_rows(n_studies: int, small: bool) -> list[dict]:
    """Dice of the bundled anatomy network on ``n_studies`` held-out abdominal and chest studies
    (``small``: the 'small' preset, else 'default'); group 'all' is the per-body mean."""
    table = evaluate(n_studies, "small" if small else "default")
    rows = []
    for body, label in (("abdomen", "anatomy (abdominal organs)"), ("chest", "anatomy (chest regions)")):
        for name, v in table[body].items():
            rows.append({"model": label, "baseline": False, "group": "all" if name == "mean" else name, "n": n_studies, "Dice %": 100.0 * v})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--preset", default="default")
    args = ap.parse_args()
    t0 = time.time()
    table = evaluate(args.n, args.preset)
    print(f"anatomy: {args.n} abdominal + {args.n} chest held-out studies ({args.preset}) in {time.time() - t0:.0f}s")
    for body, what in (("abdomen", "organ"), ("chest", "region")):
        print(f"\n| {body} {what} | Dice % |\n|---|---|")
        for k, v in table[body].items():
            print(f"| {k} | {100 * v:.1f} |")


if __name__ == "__main__":
    main()
