#!/usr/bin/env python
r"""Does weak report supervision help GLeVE? (000 Table 1, issue 4)

For each mask ratio r: train GLeVE twice through the app's own train task on the same labelled
studies - (a) r of them keep their masks and all the others train from their reports only
(L_weak, eq. 7-8), (b) the same r masks alone - then score both on held-out studies with the
shared Table-1 metrics. Same seeds, same epochs, same start (the visual encoder warm-started from
the bundled lesion_baseline, as the default GLeVE training does; the grounding heads from scratch).

Fairness: both arms take the same epochs over the same masked studies, with the same learning-rate
schedule (cosine over epochs), the same validation studies and the same initial weights (their
checksum is printed). ``--weak-per-epoch k`` trains k report-only studies per epoch, drawn afresh
each epoch, instead of all of them, so the "+ reports" arm costs (m + k) steps an epoch, not
(m + 9 m) at 10 % masks.

    .venv/bin/python scripts/gleve_weak_supervision.py --ratios 0.1 --n 70 --epochs 30 --val-interval 5 \
        --val-split 0.15 --weak-per-epoch 10 --n-test 10 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "apps", "radground"))

from lib.data.studies import SPLITS, generate_dataset  # noqa: E402
from lib.metrics.evaluation import markdown_table  # noqa: E402
from scripts_common import APP_DIR, heldout_studies, score_lesion_model  # noqa: E402


def train_arm(studies: str, model_dir: str, ratio: float, weak: bool, knobs: dict, args) -> dict:
    from main import RadGroundApp

    app = RadGroundApp(APP_DIR, studies, {"models": "gleve", "model_dir": model_dir})
    req = {
        "model": "gleve",
        "max_epochs": args.epochs,
        "val_interval": args.val_interval,
        "val_split": args.val_split,
        "pretrained": False,  # not the bundled GLeVE: it has seen every mask
        "mask_ratio": ratio,
        "weak_supervision": weak,
        "seed": args.seed,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    req.update(knobs)  # the arm's loss weights (lambda_weak, lambda_weak_response, lambda_weak_pseudo)
    if args.weak_per_epoch is not None:
        req["weak_per_epoch"] = args.weak_per_epoch
    if args.weak_start_epoch > 1:
        req["weak_start_epoch"] = args.weak_start_epoch
    net = app._trainers["gleve"]._network  # the arm's freshly built network: same seed, same weights
    checksum = float(sum(float(p.detach().double().sum()) for p in net.parameters()))
    stats = app.train(req)
    stats["init_checksum"] = checksum
    return stats


def plan_arms(lambda_weak: str, lambda_weak_response: str, lambda_weak_pseudo: str, with_reports: bool = True, alone: bool = True) -> list[tuple[bool, dict]]:
    """(weak, loss knobs) per arm: one "+ reports" arm per point of the comma lists' grid, then the
    masks-alone arm. The masks-alone arm keeps the masked studies' objective of the "+ reports"
    arms - their ``lambda_weak`` (eq. 8 weighs L_weak on masked studies too) when they all share
    one - so the arms differ only by the report-only studies."""

    def values(text: str) -> list:
        return [float(x) for x in str(text or "").split(",") if x.strip()] or [None]

    grid = [
        {k: v for k, v in (("lambda_weak", lw), ("lambda_weak_response", lr), ("lambda_weak_pseudo", lp)) if v is not None}
        for lw in values(lambda_weak) for lr in values(lambda_weak_response) for lp in values(lambda_weak_pseudo)
    ]
    shared = {k.get("lambda_weak") for k in grid}
    masks_only = {"lambda_weak": shared.pop()} if len(shared) == 1 and None not in shared else {}
    return ([(True, knobs) for knobs in grid] if with_reports else []) + ([(False, masks_only)] if alone else [])


def arm_name(ratio: float, weak: bool, knobs: dict) -> str:
    desc = ", ".join(f"{k} {v:g}" for k, v in knobs.items())
    return f"{int(round(ratio * 100))}% masks" + (" + reports" if weak else " alone") + (f" ({desc})" if desc else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ratios", default="0.1", help="comma list of mask ratios, e.g. 0.1,0.25,1.0")
    ap.add_argument("--n", type=int, default=20, help="training studies (all have masks; the ratio hides the rest)")
    ap.add_argument("--first-seed", type=int, default=60, help="offset into the train split (the bundled baseline used the first 40)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--val-interval", type=int, default=5)
    ap.add_argument("--val-split", type=float, default=0.2, help="share of the labelled studies that validate (checkpoint choice by LLS), the same in both arms")
    ap.add_argument("--weak-per-epoch", type=int, default=None, help="report-only studies drawn per epoch (default: all of them every epoch)")
    ap.add_argument("--weak-start-epoch", type=int, default=1, help="report-only studies join from this epoch; before it both arms train identically on the masks")
    ap.add_argument("--n-test", type=int, default=6)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--lambda-weak", default="", help="comma list of eq. 8 lambda_weak values, one '+ reports' arm each (default: the config's)")
    ap.add_argument("--lambda-weak-response", default="", help="comma list of lambda_weak_response values (L_con on the response map), one '+ reports' arm each")
    ap.add_argument("--lambda-weak-pseudo", default="", help="comma list of lambda_weak_pseudo values (report-consistent pseudo-targets), one '+ reports' arm each")
    ap.add_argument("--no-alone", action="store_true", help="skip the 'masks alone' arm (e.g. when another process runs it)")
    ap.add_argument("--no-reports", action="store_true", help="only the 'masks alone' arm (e.g. when another process runs the others)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--work", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    work = args.work or tempfile.mkdtemp(prefix="radground_weak_")
    studies = os.path.join(work, "studies")
    seeds = list(SPLITS["train"])[args.first_seed : args.first_seed + args.n]
    generate_dataset(studies, seeds, preset=args.preset, report_only_fraction=0.0, body="abdomen")
    test_dir, test_seeds = heldout_studies(args.n_test, args.preset, prefix="radground_weak_test_")

    tables, rows = {}, []

    arms = plan_arms(args.lambda_weak, args.lambda_weak_response, args.lambda_weak_pseudo, not args.no_reports, not args.no_alone)
    for ratio in [float(r) for r in args.ratios.split(",")]:
        for weak, knobs in arms:
            name = arm_name(ratio, weak, knobs)
            tag = "_".join(f"{k.replace('lambda_weak', 'lw')}{v:g}" for k, v in knobs.items())
            model_dir = os.path.join(work, f"model_r{ratio}_{'weak' if weak else 'masks'}" + (f"_{tag}" if tag else ""))
            torch.manual_seed(args.seed)
            t0 = time.time()
            stats = train_arm(studies, model_dir, ratio, weak, knobs, args)
            took = time.time() - t0
            tables[name], _ = score_lesion_model("gleve", test_dir, test_seeds, {"model_dir": model_dir})
            val = [(r["epoch"], round(r["val_LLS"], 3)) for r in stats.get("history", []) if "val_LLS" in r]
            steps = sum(r.get("steps", 0) for r in stats.get("history", []))
            rows.append({"arm": name, "n_train": stats.get("n_train"), "n_weak": stats.get("n_weak"), "n_val": stats.get("n_val"), "steps": steps,
                         "best_val_LLS": stats.get("best_metric"), "best_epoch": stats.get("best_metric_epoch"), "val_LLS": val,
                         "init_checksum": stats["init_checksum"], "train_s": round(took)})
            print(f"{name}: trained {stats.get('n_train')} studies ({stats.get('n_weak')} report-only), {stats.get('n_val')} validate; "
                  f"{steps} steps in {took:.0f}s; initial weights checksum {stats['init_checksum']:.4f}; "
                  f"best val LLS {stats.get('best_metric')} at epoch {stats.get('best_metric_epoch')}; val LLS by epoch {val}", flush=True)
    print()
    print(f"held-out: {len(test_seeds)} {args.preset} studies; training: {len(seeds)} studies x {args.epochs} epochs"
          + (f", {args.weak_per_epoch} report-only studies per epoch" if args.weak_per_epoch is not None else "")
          + (f", from epoch {args.weak_start_epoch}" if args.weak_start_epoch > 1 else ""))
    print(markdown_table(tables))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"arms": rows, "tables": tables}, f, indent=1)


if __name__ == "__main__":
    main()
