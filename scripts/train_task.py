#!/usr/bin/env python
"""Train a task's bundled checkpoint on synthetic training studies.

It goes through the app's own MONAI Label train task (the code path of ``/train/<task>``), then
ships the best weights as ``apps/radground/model/pretrained_<task>.pt``.

    .venv/bin/python scripts/train_task.py --task lesion_baseline --n 24 --epochs 150
    .venv/bin/python scripts/train_task.py --task anatomy --body both --n 16 --epochs 60
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
sys.path.insert(0, APP_DIR)

from lib.configs.variants import bundled_checkpoint  # noqa: E402
from lib.data.studies import SPLITS, generate_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="lesion_baseline")
    ap.add_argument("--n", type=int, default=24, help="training studies (all with final labels)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--body", default="abdomen", choices=["abdomen", "chest", "both"], help="body part of the training studies")
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--report-only-fraction", type=float, default=0.0, help="studies written without labels/final (weak report supervision: gleve)")
    ap.add_argument("--val-interval", type=int, default=20)
    ap.add_argument("--variant", default="tiny")
    ap.add_argument("--work", default=None, help="work folder (default: a temp dir)")
    ap.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--continue-bundled", action="store_true", help="start from the shipped checkpoint instead of random weights")
    args = ap.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    work = args.work or tempfile.mkdtemp(prefix="radground_train_")
    studies = os.path.join(work, "studies")
    seeds = list(SPLITS["train"])[: args.n]
    t0 = time.time()
    generate_dataset(studies, seeds, preset=args.preset, report_only_fraction=args.report_only_fraction, body=args.body)
    print(f"generated {len(seeds)} x {args.body} training studies in {time.time() - t0:.0f}s -> {studies}")

    from main import RadGroundApp

    model_dir = os.path.join(work, "model")
    app = RadGroundApp(APP_DIR, studies, {"models": args.task, "model_dir": model_dir, "variant": args.variant})
    t0 = time.time()
    stats = app.train(
        {
            "model": args.task,
            "max_epochs": args.epochs,
            "val_interval": args.val_interval,
            "val_split": 0.2,
            "dataset": "CacheDataset",
            "dataloader": "DataLoader",
            "train_batch_size": 2,
            "pretrained": args.continue_bundled,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        }
    )
    key = stats.get("key_metric_name", "val Dice")
    print(f"trained in {time.time() - t0:.0f}s: best {key} {stats.get('best_metric')} at epoch {stats.get('best_metric_epoch')}")

    suffix = "" if args.variant == "tiny" else f"_{args.variant}"
    trained = os.path.join(model_dir, f"{args.task}{suffix}.pt")
    ckpt = torch.load(trained, map_location="cpu")
    target = bundled_checkpoint(f"{args.task}{suffix}.pt")
    torch.save({"model": ckpt.get("model", ckpt)}, target + ".tmp")
    os.replace(target + ".tmp", target)
    print(f"shipped {target} ({os.path.getsize(target) / 1e6:.1f} MB)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
