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
import time

import nibabel as nib
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "apps", "radground"))

from lib.data.studies import read_report, read_truth, truth_lesions_path  # noqa: E402
from lib.metrics.evaluation import evaluate_study, markdown_table, summarise  # noqa: E402
from lib.reports import parse_report  # noqa: E402
from scripts_common import heldout_studies, infer_task  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--models", default="lesion_baseline")
    ap.add_argument("--json", default=None, help="also write the tables here")
    ap.add_argument("--model-dir", default=None, help="score checkpoints trained into this folder instead of the bundled ones")
    args = ap.parse_args()

    studies, seeds = heldout_studies(args.n, args.preset, prefix="radground_eval_")  # no label in the datastore
    tables = {}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        task = infer_task(model, {"model_dir": args.model_dir} if args.model_dir else {})
        results, times = [], []
        for seed in seeds:
            sid = f"synth_{seed:05d}"
            image = os.path.join(studies, f"{sid}.nii.gz")
            truth = read_truth(studies, sid)
            t0 = time.time()
            report = read_report(studies, sid)
            # as the server does for report tasks: the parsed report travels with the request
            label_file, _ = task({"image": image, "device": "cpu", "report": report, "parsed_report": parse_report(report).model_dump()})
            times.append(time.time() - t0)
            pred = np.asarray(nib.load(label_file).dataobj)
            os.remove(label_file)
            gt = np.asarray(nib.load(truth_lesions_path(studies, sid)).dataobj)
            organs = np.asarray(nib.load(os.path.join(studies, "labels", "organs", f"{sid}.nii.gz")).dataobj)
            gt_organ = {les["id"]: les["organ"] for les in truth["lesions"]}
            results.append(evaluate_study(sid, pred, gt, organs, truth["spacing"], gt_organ=gt_organ))
        tables[model] = summarise(results)
        print(f"{model}: {len(seeds)} studies ({args.preset}), median {np.median(times):.1f}s per study")
    print()
    print(markdown_table(tables))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(tables, f, indent=1)


if __name__ == "__main__":
    main()
