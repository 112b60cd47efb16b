#!/usr/bin/env python
"""Train MedGrounder's bundled CT checkpoint on synthetic chest studies, one stage per command (003 §3.4).

Both stages go through the app's own train task (the code path of ``/train/medgrounder``) and
share a work folder, so stage 2 fine-tunes what stage 1 published::

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_medgrounder.py --stage 1 --n 64 --epochs 12 --work /tmp/mg
    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_medgrounder.py --stage 2 --n 64 --epochs 20 --work /tmp/mg
    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_medgrounder.py --task medgrounder_cxr --stage 1 ... --work /tmp/mgx

``--task medgrounder_cxr`` trains the radiograph model on the same CT studies seen as DRRs.

After each stage the best weights (with their stage and validation-chosen threshold) are shipped
as ``apps/radground/model/pretrained_medgrounder.pt``. Stage 1 reads weak anatomy boxes from the
studies' ``labels/organs`` maps by default (``--weak-boxes-from labels``; so do stage 2's replayed
stage-1 phrases, ``--stage1-replay-fraction``): the anatomy task gives
the same structures (held-out region Dice 89 %) but costs ~10 s per study on one CPU thread;
``--weak-boxes-from anatomy`` uses it, as the server's train task does by default.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
sys.path.insert(0, APP_DIR)

from lib.configs.variants import bundled_checkpoint  # noqa: E402
from lib.data.studies import SPLITS, generate_dataset, list_studies  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="medgrounder", choices=["medgrounder", "medgrounder_cxr"], help="CT (3D) or radiograph (2D: DRRs of the same studies)")
    ap.add_argument("--stage", type=int, choices=[1, 2], required=True)
    ap.add_argument("--n", type=int, default=64, help="training chest studies (train seeds; 20%% of them validate)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--val-interval", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--max-sentences", type=int, default=16)
    ap.add_argument("--zero-box-fraction", type=float, default=None, help="most zero-box sentences per step (share); default: stage 1 all, stage 2 0.4")
    ap.add_argument("--stage1-replay-fraction", type=float, default=None,
                    help="stage 2: share of each step's sentences that rehearse stage-1 anatomy phrases (default 0.25; 0: off)")
    ap.add_argument("--weak-boxes-from", default="labels", choices=["labels", "anatomy"])
    ap.add_argument("--work", required=True, help="work folder shared by the two stages")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-ship", action="store_true")
    args = ap.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    studies = os.path.join(args.work, "studies")
    seeds = list(SPLITS["train"])[: args.n]
    if len(list_studies(studies)) < len(seeds):
        t0 = time.time()
        generate_dataset(studies, seeds, preset=args.preset, body="chest")
        print(f"generated {len(seeds)} chest studies in {time.time() - t0:.0f}s -> {studies}")

    from main import RadGroundApp

    model_dir = os.path.join(args.work, "model")
    app = RadGroundApp(APP_DIR, studies, {"models": args.task, "model_dir": model_dir, "variant": "tiny"})
    t0 = time.time()
    stats = app.train({
        "model": args.task,
        "stage": args.stage,
        "max_epochs": args.epochs,
        "val_interval": args.val_interval,
        "learning_rate": args.lr,
        "max_sentences": args.max_sentences,
        "zero_box_fraction": args.zero_box_fraction,
        "stage1_replay_fraction": args.stage1_replay_fraction,
        "weak_boxes_from": args.weak_boxes_from,
        "pretrained": args.stage == 2,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    })
    print(f"stage {args.stage} trained in {time.time() - t0:.0f}s: best {stats.get('key_metric_name')} {stats.get('best_metric')} "
          f"at epoch {stats.get('best_metric_epoch')}, threshold {stats.get('threshold')}")
    for row in stats.get("history", []):
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    if args.no_ship:
        return
    ckpt = torch.load(os.path.join(model_dir, f"{args.task}.pt"), map_location="cpu")
    target = bundled_checkpoint(f"{args.task}.pt")
    torch.save({k: ckpt[k] for k in ("model", "config", "stage", "threshold", "epoch", "metric")}, target + ".tmp")
    os.replace(target + ".tmp", target)
    print(f"shipped {target} ({os.path.getsize(target) / 1e6:.2f} MB, stage {ckpt['stage']}, threshold {ckpt['threshold']})")


if __name__ == "__main__":
    main()
