#!/usr/bin/env python
"""MedGrounder's §3.5 table on held-out synthetic chest CT (003 Tables 3/8 layout), with and without WBF.

The confidence threshold is chosen on validation studies (validation seeds, never trained on) by
centre-hit F1, as the paper does (§5.3.2; it found 0.8), unless ``--threshold`` is given; then
the held-out test studies are scored at it, without and with weighted box fusion (IoU 0.1).
Ground truth: each parsed sentence's finding boxes from the synthetic truth (stage-2 targets).
Boxes are compared in the model's normalised frame; mask IoU is rasterised on a ``--grid``^3
cube (4 mm at the default 96 for a 384 mm chest).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/evaluate_medgrounder.py --n 12 --n-val 8
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scripts_common import heldout_studies, infer_task  # noqa: E402


def predictions(task, network, studies_dir: str):
    """(corners, confidences, true corners) per sentence of every chest study in ``studies_dir``,
    pre-processed exactly as the train task does (its stage-2 targets)."""
    from monailabel.datastore.local import LocalDatastore

    from lib.trainers.medgrounder import MedGrounderTrain

    work = tempfile.mkdtemp(prefix="mg_eval_")
    try:
        helper = MedGrounderTrain(work, network, task.image_size, task.iso_mm, os.path.join(work, "unused.pt"))
        ds = LocalDatastore(studies_dir, extensions=("*.nii.gz",), auto_reload=False)
        studies, skipped = helper.load_studies(ds, 2, {**helper.config(), "body": "chest"})
        return helper.predict(network, studies, torch.device("cpu")), len(studies)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12, help="held-out test studies")
    ap.add_argument("--n-val", type=int, default=8, help="validation studies to choose the threshold on")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--grid", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from lib.data.studies import generate_dataset, split_seeds
    from lib.metrics.grounding import format_table
    from lib.trainers.medgrounder import choose_threshold, evaluate

    task = infer_task("medgrounder", {})
    path = task.get_path()
    if path is None:
        sys.exit("no medgrounder checkpoint: run scripts/train_medgrounder.py first")
    network = task._get_network("cpu", {})
    ckpt = torch.load(path, map_location="cpu")
    shape = (args.grid,) * 3
    print(f"checkpoint {os.path.basename(path)} (stage {ckpt.get('stage')}, stored threshold {ckpt.get('threshold')})")

    threshold = args.threshold
    if threshold is None:
        val_dir = tempfile.mkdtemp(prefix="mg_val_")
        try:
            generate_dataset(val_dir, split_seeds("val", args.n_val), preset=args.preset, body="chest")
            val, n_val = predictions(task, network, val_dir)
        finally:
            shutil.rmtree(val_dir, ignore_errors=True)
        threshold, val_res = choose_threshold(val, shape)
        print(f"threshold {threshold:.2f}: best centre-hit F1 {100 * val_res['overall']['CH-F1']:.1f} on {n_val} validation studies")

    test_dir, seeds = heldout_studies(args.n, args.preset, report_only_fraction=0.0, body="chest")
    try:
        test, n_test = predictions(task, network, test_dir)
    finally:
        shutil.rmtree(test_dir, ignore_errors=True)
    results = {
        "without WBF": evaluate(test, shape, threshold, wbf=False),
        "with WBF (IoU 0.1)": evaluate(test, shape, threshold, wbf=True),
    }
    print(f"\n{n_test} held-out chest studies (test seeds {seeds[0]}-{seeds[-1]}, preset {args.preset}), threshold {threshold:.2f}; %\n")
    print(format_table(results))


if __name__ == "__main__":
    main()
