#!/usr/bin/env python
"""Simulated annotation rounds: does picking studies by ``report_uncertainty`` beat random picks?

One pool of synthetic abdominal studies (training seeds from ``--seed-offset``, never seen by the
bundled GLeVE checkpoint), ``--n-initial`` of them with masks and the rest report-only. For each
strategy, on its own copy of the same pool, ``--rounds`` times:

1. pick ``--k`` unlabelled studies with the app's own strategy (``report_uncertainty`` after the
   app's own ``/scoring/report_uncertainty`` with the current model; or MONAI Label's ``random``,
   seeded);
2. "annotate" them: save the true lesion instance map as their ``final`` label (datastore API);
3. retrain GLeVE through the app's train task (``/train/gleve``'s code path), warm-started from the
   bundled checkpoint, ``--epochs`` epochs on masks (L_seg) + the remaining report-only studies
   (L_weak), no validation split;
4. score LLS (000 eq. 9) on ``--n-test`` held-out studies with ``scripts_common.score_lesion_model``.

One run, same seeds for both strategies; the table gives LLS / LR / Dice per round and the LLS
gained over round 0 (the bundled model). Small settings (CPU, about 30-40 minutes with 2 loaded cores):

    .venv/bin/python scripts/simulate_active_learning.py --preset small --n-pool 8 --n-initial 2 --k 1 --rounds 3 --epochs 1 --n-test 3

Full settings (GPU or a free CPU for some hours):

    .venv/bin/python scripts/simulate_active_learning.py --preset default --n-pool 40 --n-initial 4 --k 4 --rounds 3 --epochs 10 --n-test 10 --tta 2
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

# no file watcher, no background re-scoring over HTTP: this script is the only user of its datastores
os.environ.setdefault("MONAI_LABEL_DATASTORE_AUTO_RELOAD", "false")
os.environ.setdefault("MONAI_LABEL_AUTO_UPDATE_SCORING", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from scripts_common import APP_DIR, heldout_studies, score_lesion_model  # noqa: E402

from lib.data.studies import generate_dataset, split_seeds, truth_lesions_path  # noqa: E402
from lib.data.synthetic import generate_study, study_id_for  # noqa: E402


def annotate(datastore, image_id: str, studies: str) -> None:
    """The simulated radiologist: the study's true lesion instance map becomes its final label."""
    datastore.save_label(image_id, truth_lesions_path(studies, image_id), "final", {"simulated": True})


def pick(app, strategy: str, k: int, studies: str, tta: int, device: str) -> tuple[list[str], dict]:
    """k studies by the app's strategy (annotated one by one, as a radiologist would ask again)."""
    ds = app.datastore()
    scoring = {}
    if strategy != "random":
        scoring = app.scoring({"method": strategy, "tta": tta, "device": device})
    picked = []
    for _ in range(k):
        res = app.next_sample({"strategy": strategy})
        if not res:
            break
        picked.append(res["id"])
        annotate(ds, res["id"], studies)
    return picked, scoring


def evaluate(model_dir: str, test_dir: str, test_seeds) -> dict:
    table, _ = score_lesion_model("gleve", test_dir, test_seeds, {"model_dir": model_dir})
    return table["all"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--n-pool", type=int, default=8)
    ap.add_argument("--n-initial", type=int, default=2, help="pool studies with masks at the start")
    ap.add_argument("--k", type=int, default=1, help="studies annotated per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1, help="GLeVE epochs per round (warm start from the bundled checkpoint)")
    ap.add_argument("--n-test", type=int, default=3)
    ap.add_argument("--tta", type=int, default=1, help="augmented views for report_uncertainty")
    ap.add_argument("--strategies", default="report_uncertainty,random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seed-offset", type=int, default=1000, help="first training seed of the pool (the bundled GLeVE saw seeds 0-39)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default=None)
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = args.work or tempfile.mkdtemp(prefix="radground_al_")
    t0 = time.time()

    # the pool: only abdominal studies with at least one reported lesion count (GLeVE trains on those)
    seeds, offset = [], args.seed_offset
    while len(seeds) < args.n_pool:
        for s in split_seeds("train", args.n_pool, start=offset):
            if len(seeds) < args.n_pool and generate_study(s, "tiny").truth["lesions"]:
                seeds.append(s)
        offset += args.n_pool
    initial = set(random.Random(args.seed).sample(seeds, args.n_initial))
    template = os.path.join(work, "pool")
    generate_dataset(template, seeds, preset=args.preset, report_only_fraction=[s for s in seeds if s not in initial])
    test_dir, test_seeds = heldout_studies(args.n_test, args.preset, prefix="radground_al_test_")
    print(f"pool {len(seeds)} studies ({args.n_initial} with masks: {sorted(study_id_for(s) for s in initial)}), "
          f"{args.n_test} held-out; generated in {time.time() - t0:.0f}s; work {work}", flush=True)

    from lib.configs.variants import BUNDLED_MODEL_DIR

    rows = []
    base = evaluate(BUNDLED_MODEL_DIR, test_dir, test_seeds)
    rows.append({"strategy": "(bundled)", "round": 0, "masks": args.n_initial, "picked": [], **base})
    print(f"round 0 (bundled checkpoint): LLS {base['LLS']:.3f}", flush=True)

    from main import RadGroundApp

    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        studies = os.path.join(work, strategy, "studies")
        model_dir = os.path.join(work, strategy, "model")
        shutil.copytree(template, studies)
        random.seed(args.seed)  # MONAI Label's Random strategy draws from the global generator
        torch.manual_seed(args.seed)
        app = RadGroundApp(APP_DIR, studies, {"models": "gleve", "model_dir": model_dir, "active_learning": "true", "al_tta": str(args.tta)})
        app._auto_update_scoring = False  # no server to send /scoring requests to
        masks = args.n_initial
        for r in range(1, args.rounds + 1):
            t = time.time()
            picked, scoring = pick(app, strategy, args.k, studies, args.tta, device)
            masks += len(picked)
            stats = app.train({"model": "gleve", "max_epochs": args.epochs, "val_split": 0.0, "pretrained": True, "device": device, "seed": args.seed})
            m = evaluate(model_dir, test_dir, test_seeds)
            picked_scores = {i: (scoring.get("scores", {}).get(i) or {}).get(strategy) for i in picked} if scoring else {}
            rows.append({"strategy": strategy, "round": r, "masks": masks, "picked": picked, "picked_scores": picked_scores,
                         "n_train": stats.get("n_train"), "n_weak": stats.get("n_weak"), **m})
            print(f"{strategy} round {r}: picked {picked} {picked_scores or ''} -> LLS {m['LLS']:.3f} ({time.time() - t:.0f}s)", flush=True)

    def pct(v):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"

    print("\n| strategy | round | masks | picked | LLS % | LLS gain (pts) | LR % | Dice % | FP |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        gain = "" if row["round"] == 0 else f"{100 * (row['LLS'] - base['LLS']):+.1f}"
        print(f"| {row['strategy']} | {row['round']} | {row['masks']} | {', '.join(row['picked'])} | {pct(row['LLS'])} | {gain} | {pct(row['LR'])} | {pct(row['Dice'])} | {row['false_positives']} |")
    print(f"\nheld-out lesions: {base['n_lesions']}; total {time.time() - t0:.0f}s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2, default=float)
    shutil.rmtree(test_dir, ignore_errors=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
