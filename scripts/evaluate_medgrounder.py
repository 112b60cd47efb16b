#!/usr/bin/env python
"""MedGrounder's §3.5 table on held-out synthetic chest studies (003 Tables 3/8 layout), with and without WBF.

The confidence threshold is chosen on validation studies (validation seeds, never trained on) by
centre-hit F1, as the paper does (§5.3.2; it found 0.8), unless ``--threshold`` is given; then
the held-out test studies are scored at it, without and with weighted box fusion (IoU 0.1), and
against a REC-style baseline made from the same network: exactly one box per sentence (its most
confident query), what single-box phrase grounding (MedRPG, AGPT) answers - the formulation
GMPG replaces. Ground truth: each parsed sentence's finding boxes from the synthetic truth (stage-2
targets), split zero / single / multi-box. Boxes are compared in the model's normalised frame;
mask IoU is rasterised on a ``--grid`` cube / square (4 mm at the default 96 for a 384 mm chest).
``--task medgrounder_cxr`` scores the radiograph model on the studies' DRRs.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/evaluate_medgrounder.py --n 36 --n-val 8
    OMP_NUM_THREADS=1 .venv/bin/python scripts/evaluate_medgrounder.py --task medgrounder_cxr --n 36 --n-val 8
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scripts_common import heldout_studies, infer_task  # noqa: E402

ACCURACY_TITLE = "MedGrounder (003) §3.5: per box-count category, vs a REC-style single-box answer"
ACCURACY_HEADLINE = "P@F1=1 %"
TASKS = ("medgrounder", "medgrounder_cxr")
logger = logging.getLogger(__name__)


def trainer_class(task_name: str):
    if task_name == "medgrounder_cxr":
        from lib.trainers.medgrounder_cxr import MedGrounderCXRTrain

        return MedGrounderCXRTrain
    from lib.trainers.medgrounder import MedGrounderTrain

    return MedGrounderTrain


def predictions(task, network, studies_dir: str, task_name: str = "medgrounder"):
    """(corners, confidences, true corners) per sentence of every chest study in ``studies_dir``,
    pre-processed exactly as the train task does (its stage-2 targets; DRRs for the 2D task)."""
    from monailabel.datastore.local import LocalDatastore

    work = tempfile.mkdtemp(prefix="mg_eval_")
    try:
        helper = trainer_class(task_name)(work, network, task.image_size, task.iso_mm, os.path.join(work, "unused.pt"))
        ds = LocalDatastore(studies_dir, extensions=("*.nii.gz",), auto_reload=False)
        studies, skipped = helper.load_studies(ds, 2, {**helper.config(), "body": "chest", "stage1_replay_fraction": 0})
        return helper.predict(network, studies, torch.device("cpu")), len(studies)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def top1(preds):
    """REC-style answers: every sentence gets exactly its most confident box (confidence 1)."""
    out = []
    for corners, conf, true in preds:
        k = int(np.argmax(conf)) if len(conf) else None
        out.append((corners[[k]] if k is not None else corners[:0], np.ones(1 if k is not None else 0), true))
    return out


def load(task_name: str, model_dir=None):
    """The app's infer task with its bundled weights, or those a training published in ``model_dir``."""
    task = infer_task(task_name, {"model_dir": model_dir} if model_dir else {})
    path = task.get_path()
    if path is None:
        raise RuntimeError(f"no {task_name} checkpoint: run scripts/train_medgrounder.py --task {task_name}")
    network = task._get_network("cpu", {})
    return task, network, torch.load(path, map_location="cpu")


def _studies(split: str, n: int, preset: str, cache=None) -> tuple[str, list[int], bool]:
    """(folder, seeds, whether the caller deletes it): ``n`` chest studies of ``split``, in a new
    temp folder, or generated once under ``cache`` and reused (same seeds, same studies)."""
    from lib.data.studies import generate_dataset, list_studies, split_seeds

    seeds = split_seeds(split, n)
    if cache is None:
        if split == "test":
            d, seeds = heldout_studies(n, preset, report_only_fraction=0.0, body="chest")
            return d, seeds, True
        d = tempfile.mkdtemp(prefix=f"mg_{split}_")
        generate_dataset(d, seeds, preset=preset, body="chest")
        return d, seeds, True
    d = os.path.join(cache, f"{split}_{n}_{preset}")
    if not os.path.isdir(d) or len(list_studies(d)) < n:
        generate_dataset(d, seeds, preset=preset, body="chest")
    return d, seeds, False


def score(task_name: str, n: int, n_val: int, preset: str, grid: int, threshold=None, model_dir=None, cache=None) -> tuple[dict, dict]:
    """({row name: §3.5 summary}, info) for the bundled ``task_name`` on ``n`` held-out studies;
    the threshold chosen on ``n_val`` validation studies (``n_val`` 0: the checkpoint's).
    ``cache``: a folder that keeps the generated studies for the next run."""
    from lib.trainers.medgrounder import choose_threshold, evaluate

    task, network, ckpt = load(task_name, model_dir)
    shape = (grid,) * network.config.spatial_dims
    info = {"stage": ckpt.get("stage"), "stored_threshold": ckpt.get("threshold"), "checkpoint": task.get_path()}
    if threshold is None and n_val > 0:
        val_dir, _, owned = _studies("val", n_val, preset, cache)
        try:
            val, info["n_val"] = predictions(task, network, val_dir, task_name)
        finally:
            if owned:
                shutil.rmtree(val_dir, ignore_errors=True)
        threshold, val_res = choose_threshold(val, shape)
        info["val_CH-F1"] = val_res["overall"]["CH-F1"]
    elif threshold is None:
        threshold = float(ckpt.get("threshold") or network.config.threshold)
    info["threshold"] = float(threshold)
    test_dir, seeds, owned = _studies("test", n, preset, cache)
    try:
        test, info["n_test"] = predictions(task, network, test_dir, task_name)
    finally:
        if owned:
            shutil.rmtree(test_dir, ignore_errors=True)
    info["seeds"] = (seeds[0], seeds[-1])
    results = {
        "without WBF": evaluate(test, shape, threshold, wbf=False),
        "with WBF (IoU 0.1)": evaluate(test, shape, threshold, wbf=True),
        "REC-style top-1 box (baseline)": evaluate(top1(test), shape, 0.5, wbf=False),
    }
    return results, info


def accuracy_rows(n_studies: int, small: bool) -> list[dict]:
    """§3.5 metrics (with WBF, at the checkpoint's validation-chosen threshold) of the bundled CT
    model, and of the radiograph model when it is bundled, per box-count category, beside the
    REC-style single-box answer of the same network (issue 10's accuracy table)."""
    rows = []
    for name in TASKS:
        try:
            results, _ = score(name, n_studies, 0, "small", 48 if small else 96)
        except RuntimeError:
            if name == "medgrounder":
                raise
            continue  # the radiograph model is optional
        for label, key, baseline in ((name, "with WBF (IoU 0.1)", False), (f"{name} REC-style top-1", "REC-style top-1 box (baseline)", True)):
            for cat in ("zero", "single", "multi", "overall"):
                r = results[key][cat]
                pct = lambda v: None if v != v else round(100 * float(v), 1)  # noqa: E731
                rows.append({
                    "model": label,
                    "baseline": baseline,
                    "group": "all" if cat == "overall" else f"{cat}-box",
                    "n": int(r["n"]),
                    "P@F1=1 %": pct(r["P@F1=1"]),
                    "N-Acc %": pct(r["N-Acc"]),
                    "CH-F1 %": pct(r["CH-F1"]),
                    "Acc %": pct(r["Acc"]),
                    "mIoU %": pct(r["mIoU"]),
                })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="medgrounder", choices=TASKS)
    ap.add_argument("--n", type=int, default=12, help="held-out test studies")
    ap.add_argument("--n-val", type=int, default=8, help="validation studies to choose the threshold on")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--grid", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model-dir", default=None, help="score <model-dir>/<task>.pt (what a training published) instead of the bundled weights")
    ap.add_argument("--cache", default=None, help="keep the generated validation / test studies in this folder and reuse them")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from lib.metrics.grounding import format_table

    try:
        results, info = score(args.task, args.n, args.n_val, args.preset, args.grid, args.threshold, args.model_dir, args.cache)
    except RuntimeError as e:
        sys.exit(str(e))
    print(f"{args.task}: {info['checkpoint']} (stage {info['stage']}, stored threshold {info['stored_threshold']})")
    if "val_CH-F1" in info:
        print(f"threshold {info['threshold']:.2f}: best centre-hit F1 {100 * info['val_CH-F1']:.1f} on {info['n_val']} validation studies")
    s0, s1 = info["seeds"]
    print(f"\n{info['n_test']} held-out chest studies (test seeds {s0}-{s1}, preset {args.preset}), threshold {info['threshold']:.2f}; %\n")
    print(format_table(results))


if __name__ == "__main__":
    main()
