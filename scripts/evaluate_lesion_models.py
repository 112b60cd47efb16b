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
