"""Score MedVol-R1 (002) on held-out synthetic queries: DSC and IoU of SFT only vs SFT + GRPO
(Table 1) and the "w/o R_c" reward ablation (Table 2(a)), in one run, through the app's own infer
task (the server's code path), on studies from test seeds only.

    .venv/bin/python scripts/evaluate_medvolr1.py --n 8
    .venv/bin/python scripts/evaluate_medvolr1.py --n 8 --ckpt-dir /tmp/medvolr1   # sft.pt, grpo.pt, grpo_wo_rc.pt of a training work folder

A malformed policy answer (the infer task's 422) scores DSC = IoU = 0 and counts against format %.
Each held-out study is asked its queries twice: in wordings drawn as in training ("seen
wordings") and in the first wording of each list, which training never draws ("unseen
wordings", the paper's paraphrased-query setting); rows are split by both and by query kind.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from typing import Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
for p in (APP_DIR, os.path.dirname(os.path.abspath(__file__))):
    if p not in sys.path:
        sys.path.insert(0, p)

logger = logging.getLogger("evaluate_medvolr1")

ACCURACY_TITLE = "MedVol-R1 (002) Table 1: query grounding DSC / IoU, SFT + GRPO vs pure SFT"
ACCURACY_HEADLINE = "DSC %"

#: arm -> (bundled file, file in a training work folder)
ARMS = {
    "SFT only": ("pretrained_medvolr1_sft.pt", "sft.pt"),
    "SFT + GRPO": ("pretrained_medvolr1.pt", "grpo.pt"),
    "w/o R_c": ("pretrained_medvolr1_wo_rc.pt", "grpo_wo_rc.pt"),
}


def arm_checkpoints(ckpt_dir: Optional[str]) -> dict[str, str]:
    from lib.configs.variants import BUNDLED_MODEL_DIR

    out = {}
    for arm, (bundled, work) in ARMS.items():
        path = os.path.join(ckpt_dir, work) if ckpt_dir else os.path.join(BUNDLED_MODEL_DIR, bundled)
        if os.path.isfile(path):
            out[arm] = path
    return out


#: phrasing of lib.data.queries -> row group
PHRASING_GROUPS = {"train": "seen wordings", "heldout": "unseen wordings", "all": "any wording"}


def heldout_queries(n: int, preset: str, phrasings, max_per_study: Optional[int]):
    """(studies folder, [(image path, Query, source mask, phrasing)]) of ``n`` held-out studies."""
    import nibabel as nib

    from lib.data.queries import study_queries
    from lib.data.studies import organ_path, read_truth, truth_lesions_path
    from scripts_common import heldout_studies

    studies, seeds = heldout_studies(n, preset)
    out = []
    for seed in seeds:
        sid = f"synth_{seed:05d}"
        organs = np.asarray(nib.load(organ_path(studies, sid)).dataobj)
        lesions = np.asarray(nib.load(truth_lesions_path(studies, sid)).dataobj)
        for phrasing in phrasings:
            qs = study_queries(sid, read_truth(studies, sid), organs, lesions, seed=seed, phrasing=phrasing)
            if max_per_study:
                pick = np.random.default_rng(seed).permutation(len(qs))[:max_per_study]
                qs = [qs[i] for i in sorted(pick)]
            out += [(os.path.join(studies, f"{sid}.nii.gz"), q, q.mask(organs, lesions), phrasing) for q in qs]
    return studies, out


def score_arm(checkpoint: str, queries) -> list[dict]:
    """Per-query DSC / IoU of one checkpoint through the app's medvolr1 infer task."""
    import nibabel as nib

    from lib.networks.medvolr1.answer import PolicyFormatError
    from lib.networks.medvolr1.evaluation import iou
    from lib.networks.medvolr1.rewards import dice
    from scripts_common import infer_task

    model_dir = tempfile.mkdtemp(prefix="medvolr1_eval_")
    try:
        shutil.copyfile(checkpoint, os.path.join(model_dir, "medvolr1.pt"))
        task = infer_task("medvolr1", {"model_dir": model_dir})
        rows = []
        for image, q, truth, phrasing in queries:
            try:
                label_file, _ = task({"image": image, "query": q.text, "device": "cpu"})
                pred = np.asarray(nib.load(label_file).dataobj) > 0
                os.remove(label_file)
                ok = True
            except PolicyFormatError:
                pred, ok = np.zeros_like(truth, bool), False
            rows.append({"kind": q.kind, "wording": PHRASING_GROUPS[phrasing], "format_ok": ok, "dsc": dice(pred, truth), "iou": iou(pred, truth)})
        return rows
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


def summary_rows(arm: str, rows: list[dict], baseline: bool) -> list[dict]:
    out = []
    wordings = sorted({r["wording"] for r in rows})
    groups = ["all"] + (wordings if len(wordings) > 1 else []) + sorted({r["kind"] for r in rows})
    for g in groups:
        sel = [r for r in rows if g in ("all", r["kind"], r["wording"])]
        if not sel:
            continue
        out.append({
            "model": arm,
            "baseline": baseline,
            "group": g,
            "n": len(sel),
            "DSC %": 100.0 * float(np.mean([r["dsc"] for r in sel])),
            "IoU %": 100.0 * float(np.mean([r["iou"] for r in sel])),
            "format %": 100.0 * float(np.mean([r["format_ok"] for r in sel])),
        })
    return out


def evaluate(n: int, preset: str, phrasings, max_per_study: Optional[int], ckpt_dir: Optional[str], arms=None) -> list[dict]:
    ckpts = arm_checkpoints(ckpt_dir)
    if "SFT + GRPO" not in ckpts:
        raise RuntimeError("no medvolr1 checkpoint: run scripts/train_medvolr1.py")
    studies, queries = heldout_queries(n, preset, phrasings, max_per_study)
    try:
        rows = []
        for arm, path in ckpts.items():
            if arms and arm not in arms:
                continue
            logger.info("scoring %s (%s) on %d queries", arm, path, len(queries))
            rows += summary_rows(arm, score_arm(path, queries), baseline=arm == "SFT only")
        return rows
    finally:
        shutil.rmtree(studies, ignore_errors=True)


def accuracy_rows(n_studies: int, small: bool) -> list[dict]:
    """Pure SFT (the baseline row) vs SFT + GRPO on held-out queries (issue 10's registry)."""
    return [
        r
        for r in evaluate(n_studies, "tiny", ("train", "heldout"), 2 if small else None, None, arms=("SFT only", "SFT + GRPO"))
        if r["group"] in ("all", "seen wordings", "unseen wordings") or not small
    ]


def print_table(rows: list[dict]) -> None:
    cols = ["model", "group", "n", "DSC %", "IoU %", "format %"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.1f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="held-out studies (test seeds)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--phrasing", default="train,heldout", help="comma list of train (seen wordings), heldout (unseen wordings), all")
    ap.add_argument("--max-queries-per-study", type=int, default=None)
    ap.add_argument("--ckpt-dir", default=None, help="a train_medvolr1.py work folder (default: the bundled checkpoints)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    phrasings = [p.strip() for p in args.phrasing.split(",") if p.strip()]
    bad = [p for p in phrasings if p not in PHRASING_GROUPS]
    if bad:
        ap.error(f"--phrasing: unknown {bad}; use {sorted(PHRASING_GROUPS)}")
    rows = evaluate(args.n, args.preset, phrasings, args.max_queries_per_study, args.ckpt_dir)
    print_table(rows)


if __name__ == "__main__":
    main()
