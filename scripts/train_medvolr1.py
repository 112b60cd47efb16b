"""Train and ship the bundled MedVol-R1 (002) checkpoints through the app's own train task.

Stages, each its own command (every one stays under 15 min on one CPU thread; GRPO takes about 12 min):

    .venv/bin/python scripts/train_medvolr1.py --stage sft  --n 24 --work /tmp/medvolr1   # propagator + cold-start SFT
    .venv/bin/python scripts/train_medvolr1.py --stage grpo --n 24 --work /tmp/medvolr1   # SFT -> GRPO (all rewards), 320 updates (~3 epochs)
    .venv/bin/python scripts/train_medvolr1.py --stage wo_rc --n 24 --work /tmp/medvolr1  # SFT -> GRPO without R_c (Table 2(a))

Outputs: ``<work>/sft.pt``, ``<work>/grpo.pt``, ``<work>/grpo_wo_rc.pt``; ``--ship`` copies
them to ``model/pretrained_medvolr1_sft.pt``, ``model/pretrained_medvolr1.pt`` (the default:
SFT + GRPO) and ``model/pretrained_medvolr1_wo_rc.pt``, which ``scripts/evaluate_medvolr1.py``
compares.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
sys.path.insert(0, APP_DIR)

from lib.configs.variants import bundled_checkpoint  # noqa: E402
from lib.data.studies import SPLITS, generate_dataset  # noqa: E402

#: stage -> (train request stage, checkpoint it starts from, file it writes, shipped name)
STAGES = {
    "sft": ("sft", None, "sft.pt", "medvolr1_sft.pt"),
    "grpo": ("grpo", "sft.pt", "grpo.pt", "medvolr1.pt"),
    "wo_rc": ("grpo", "sft.pt", "grpo_wo_rc.pt", "medvolr1_wo_rc.pt"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=sorted(STAGES), required=True)
    ap.add_argument("--n", type=int, default=24, help="training studies (train seeds)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--sft-epochs", type=int, default=12)
    ap.add_argument("--propagator-epochs", type=int, default=12)
    ap.add_argument("--grpo-steps", type=int, default=320, help="GRPO updates of 4 queries x G = 4: 320 is ~3 epochs of the ~426 training queries (§3.1.3)")
    ap.add_argument("--temperature", type=float, default=None, help="GRPO sampling temperature (default: the variant's, 1.0)")
    ap.add_argument("--max-minutes", type=float, default=13.0)
    ap.add_argument("--work", default="/tmp/medvolr1")
    ap.add_argument("--ship", action="store_true", help="copy the result to model/pretrained_<...>.pt")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    req_stage, start_file, out_file, shipped = STAGES[args.stage]
    studies = os.path.join(args.work, "studies")
    if not os.path.isdir(studies) or len([f for f in os.listdir(studies) if f.endswith(".nii.gz")]) < args.n:
        generate_dataset(studies, list(SPLITS["train"])[: args.n], preset=args.preset, report_only_fraction=0.0)
    model_dir = os.path.join(args.work, "model")
    os.makedirs(model_dir, exist_ok=True)
    published = os.path.join(model_dir, "medvolr1.pt")
    if start_file:
        src = os.path.join(args.work, start_file)
        if not os.path.isfile(src):
            sys.exit(f"{src} missing: run --stage sft first")
        shutil.copyfile(src, published)
    elif os.path.exists(published):
        os.remove(published)

    from main import RadGroundApp

    app = RadGroundApp(APP_DIR, studies, {"models": "medvolr1", "model_dir": model_dir})
    request = {
        "model": "medvolr1",
        "stage": req_stage,
        "pretrained": bool(start_file),
        "sft_epochs": args.sft_epochs,
        "propagator_epochs": args.propagator_epochs,
        "grpo_steps": args.grpo_steps,
        "reward_without": "c" if args.stage == "wo_rc" else "",
        "max_minutes": args.max_minutes,
    }
    if args.temperature is not None:
        request["temperature"] = args.temperature
    t0 = time.time()
    stats = app.train(request)
    out = os.path.join(args.work, out_file)
    shutil.copyfile(published, out)
    summary = {k: stats.get(k) for k in ("stage", "n_train_queries", "n_val_queries", "validation", "total_seconds")}
    if stats.get("grpo"):
        g = stats["grpo"]
        head, tail = g[: max(1, len(g) // 4)], g[-max(1, len(g) // 4) :]
        for key in ("reward", "R_f", "tied_groups", "reward_std", "kl", "clip_frac", "max_logratio_at_start"):
            summary[f"{key}_first_quarter"] = round(sum(r[key] for r in head) / len(head), 4)
            summary[f"{key}_last_quarter"] = round(sum(r[key] for r in tail) / len(tail), 4)
        summary["grpo_steps_done"] = len(g)
        with open(os.path.join(args.work, out_file.replace(".pt", "_stats.json")), "w") as f:
            json.dump(g, f)
    if stats.get("sft_loss"):
        summary["sft_loss"] = [round(v, 3) for v in stats["sft_loss"]]
    print(json.dumps(summary, indent=1))
    print(f"{args.stage}: {time.time() - t0:.0f}s -> {out} ({os.path.getsize(out) / 1e6:.1f} MB)")
    if args.ship:
        target = bundled_checkpoint(shipped)
        shutil.copyfile(out, target + ".tmp")
        os.replace(target + ".tmp", target)
        print(f"shipped {target}")


if __name__ == "__main__":
    main()
