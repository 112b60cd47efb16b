#!/usr/bin/env python
"""Score lesion models on held-out synthetic studies (seeds never used in training).

Prints GLeVE's Table 1 figures (Dice, HD95, LR, LLS per organ group) for each model, side by
side, from the app's own infer tasks and the shared evaluation code in lib/metrics.

    .venv/bin/python scripts/evaluate_lesion_models.py --n 10 --preset default --models lesion_baseline
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "apps", "radground"))

from lib.metrics.evaluation import markdown_table  # noqa: E402
from scripts_common import heldout_studies, score_lesion_model  # noqa: E402

#: issue 10's accuracy table (scripts/accuracy_table.py; interface in its docstring)
ACCURACY_TITLE = "GLeVE (000) Table 1: per organ group, vs the report-blind lesion_baseline"
ACCURACY_HEADLINE = "Dice %"
ACCURACY_MODELS = ("gleve", "lesion_baseline")


def table_rows(model: str, table: dict, baseline: bool) -> list[dict]:
    """Accuracy-table rows of one ``summarise`` table: one per organ group, figures in % / mm."""
    def pct(v):
        return None if v is None or v != v else 100.0 * float(v)

    return [{"model": model, "baseline": baseline, "group": g, "n": int(r["n_lesions"]), "Dice %": pct(r["Dice"]),
             "HD95 mm": None if r["HD95_mm"] != r["HD95_mm"] else float(r["HD95_mm"]), "LR %": pct(r["LR"]),
             "LLS %": pct(r["LLS"]), "FP": int(r["false_positives"])} for g, r in table.items()]


def accuracy_rows(n_studies: int, small: bool) -> list[dict]:
    """GLeVE and lesion_baseline (bundled weights) on ``n_studies`` held-out abdominal studies
    (``small``: the 'small' preset, else 'default', as the README's figures)."""
    import shutil

    studies, seeds = heldout_studies(n_studies, "small" if small else "default", prefix="radground_acc_")
    try:
        rows = []
        for model in ACCURACY_MODELS:
            table, _ = score_lesion_model(model, studies, seeds, {})
            rows += table_rows(model, table, baseline=model == "lesion_baseline")
        return rows
    finally:
        shutil.rmtree(studies, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--models", default="lesion_baseline")
    ap.add_argument("--json", default=None, help="also write the tables here")
    ap.add_argument("--model-dir", default=None, help="score checkpoints trained into this folder instead of the bundled ones")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="app --conf setting, e.g. gleve_without=ocre (repeatable)")
    args = ap.parse_args()
    conf = dict(kv.split("=", 1) for kv in args.conf)
    if args.model_dir:
        conf["model_dir"] = args.model_dir

    studies, seeds = heldout_studies(args.n, args.preset, prefix="radground_eval_")  # no label in the datastore
    tables = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        tables[model], times = score_lesion_model(model, studies, seeds, conf)
        print(f"{model}: {len(seeds)} studies ({args.preset}), median {np.median(times):.1f}s per study")
    print()
    print(markdown_table(tables))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(tables, f, indent=1)


if __name__ == "__main__":
    main()
