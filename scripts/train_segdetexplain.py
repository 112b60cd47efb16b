#!/usr/bin/env python
"""Train the bundled Seg-det-explain (001) checkpoint on synthetic training studies.

Slices x objects of ``--n`` training studies (``lib.data.slice_grounding``: §4 slice selection,
appearance descriptions, masks, boxes) go through the train task's own loop
(``lib.trainers.segdetexplain.fit``); the best weights (validation loss on ``--n-val`` val-split
studies) are shipped as ``apps/radground/model/pretrained_segdetexplain.pt``.

The shipped weights are two locked runs of ~9 minutes each (the second fine-tunes the first):

    flock /tmp/radground_cpu.lock env OMP_NUM_THREADS=1 .venv/bin/python scripts/train_segdetexplain.py --n 20 --epochs 8 --max-minutes 8 --out /tmp/sde1.pt
    flock /tmp/radground_cpu.lock env OMP_NUM_THREADS=1 .venv/bin/python scripts/train_segdetexplain.py --n 20 --epochs 8 --max-minutes 8 --lr 5e-4 --continue-from /tmp/sde1.pt
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "apps", "radground"))

from lib.configs.variants import bundled_checkpoint  # noqa: E402
from lib.data.slice_grounding import synthetic_samples  # noqa: E402
from lib.data.studies import split_seeds  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="training studies")
    ap.add_argument("--n-val", type=int, default=2, help="validation studies (val split)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-minutes", type=float, default=8.0, help="wall-clock budget (the best epoch so far is kept)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=bundled_checkpoint("segdetexplain.pt"))
    ap.add_argument("--continue-from", default=None, help="a checkpoint to fine-tune instead of fresh weights")
    args = ap.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from lib.networks.segdetexplain import SegDetExplain, SegDetExplainConfig
    from lib.networks.vlm.tokenizer import project_corpus
    from lib.trainers.common import save_checkpoint_atomic
    from lib.trainers.segdetexplain import checkpoint_dict, fit

    t0 = time.time()
    train = synthetic_samples(split_seeds("train", args.n), args.preset)
    val = synthetic_samples(split_seeds("val", args.n_val), args.preset)
    print(f"{len(train)} training / {len(val)} validation samples in {time.time() - t0:.0f}s")
    if args.continue_from:
        model = SegDetExplain.from_checkpoint(torch.load(args.continue_from, map_location="cpu", weights_only=False)["model"])
    else:
        corpus = sorted({t for x in train for t in (x.question, x.answer, x.closer_question)})
        model = SegDetExplain.build(SegDetExplainConfig.tiny(), corpus=project_corpus() + corpus)
    out = fit(
        model, train, val, args.epochs, args.batch_size, args.lr, max_minutes=args.max_minutes,
        publish=lambda m, e, metric: save_checkpoint_atomic(checkpoint_dict(m, e, metric), args.out),
        on_epoch=lambda row: print(row, flush=True),
    )
    print(f"best val loss {out['best_metric']:.4f} at epoch {out['best_metric_epoch']} ({out['total_time']}); -> {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
