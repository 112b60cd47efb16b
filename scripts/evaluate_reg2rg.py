#!/usr/bin/env python
"""Score Reg2RG (004) on held-out synthetic chest studies, next to the "GLB only" ablation (Table 5).

Both models run through the app's own ``reg2rg`` infer task (bundled checkpoints:
``pretrained_reg2rg.pt`` and ``pretrained_reg2rg_glb.pt``, i.e. ``--conf reg2rg_features glb``),
with region masks from the ``anatomy`` task, on test seeds never used in training. Printed:

- NLG (BLEU-1..4, METEOR, ROUGE-L) and clinical efficacy (P/R/F1) on the whole report (region
  texts joined in canonical region order, RRA prefixes stripped), full model vs GLB only;
- region recognition P/R/F1 per region (Table 3; the full model only: GLB only has no region to
  recognise);
- per region, how often the generated report mentions the findings the synthetic truth has there.

    .venv/bin/python scripts/evaluate_reg2rg.py --n 20 --preset small
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import torch

from scripts_common import APP_DIR, heldout_studies, infer_task  # noqa: F401  (puts the app on sys.path)

from lib.data.region_reports import REGION_NAMES  # noqa: E402
from lib.data.studies import image_path, read_truth  # noqa: E402
from lib.metrics.report_generation import (  # noqa: E402
    FINDING_KIND_LABEL,
    clinical_efficacy,
    finding_labels,
    nlg_scores,
    region_finding_labels,
    region_recognition,
)

MODELS = {"Reg2RG (TXT+GEO+GLB, RRA)": "txt,geo,glb", "GLB only": "glb"}


def run_model(features: str, studies: str, ids: list[str], max_new_tokens: int) -> dict[str, list[dict]]:
    task = infer_task("reg2rg", {"reg2rg_features": features})
    out = {}
    for sid in ids:
        _, result = task({"image": image_path(studies, sid), "model": "reg2rg", "device": "cpu", "max_new_tokens": max_new_tokens})
        out[sid] = result["regions"]
    return out


def score(ids: list[str], truths: dict[str, dict], answers: dict[str, list[dict]]) -> dict:
    refs, preds, ref_labels, pred_labels = [], [], [], []
    mentions = {r: [0, 0] for r in REGION_NAMES}  # region -> [truth findings mentioned, truth findings]
    pairs = []
    for sid in ids:
        truth = truths[sid]["region_reports"]
        got = {rec["region"]: rec["text"] for rec in answers[sid]}
        order = [r for r in REGION_NAMES if r in truth]
        refs.append(" ".join(truth[r] for r in order))
        preds.append(" ".join(got.get(r, "") for r in order if got.get(r)))
        ref_labels.append(region_finding_labels(truth))
        pred_labels.append(region_finding_labels({r: t for r, t in got.items() if t}))
        per_region = {r: finding_labels(got.get(r, ""), r) for r in REGION_NAMES}
        for f in truths[sid]["findings"]:
            region = f["region"]
            mentions[region][1] += 1
            mentions[region][0] += FINDING_KIND_LABEL[f["kind"]] in per_region[region]
        pairs += [(rec["region"], rec["recognised_area"]) for rec in answers[sid]]
    return {
        "nlg": nlg_scores(refs, preds),
        "ce": clinical_efficacy(ref_labels, pred_labels),
        "recognition": region_recognition(pairs, REGION_NAMES),
        "mentions": mentions,
        "examples": [(ids[0], refs[0], preds[0])],
    }


def fmt(x, pct=True):
    return "n/a" if x is None else (f"{100 * x:.2f}" if pct else f"{x:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="held-out chest studies")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--max-new-tokens", type=int, default=600)
    ap.add_argument("--json", default=None, help="also write the scores here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    studies, seeds = heldout_studies(args.n, args.preset, report_only_fraction=1.0, body="chest")
    try:
        ids = sorted(n[: -len(".nii.gz")] for n in os.listdir(studies) if n.endswith(".nii.gz"))
        truths = {sid: read_truth(studies, sid) for sid in ids}
        results = {}
        for name, features in MODELS.items():
            t0 = time.time()
            results[name] = score(ids, truths, run_model(features, studies, ids, args.max_new_tokens))
            print(f"{name}: {len(ids)} studies in {time.time() - t0:.0f}s", flush=True)
    finally:
        shutil.rmtree(studies, ignore_errors=True)

    print(f"\nHeld-out synthetic chest CT ({args.n} studies, preset {args.preset}, test seeds {seeds[0]}-{seeds[-1]}); region masks from the anatomy task\n")
    print("| model | BL-1 | BL-2 | BL-3 | BL-4 | MTR | RG-L | CE Pre. | CE Rec. | CE F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        n, ce = r["nlg"], r["ce"]
        print(f"| {name} | " + " | ".join(fmt(n[k]) for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L")) + " | " + " | ".join(fmt(ce[k], False) for k in ("precision", "recall", "f1")) + " |")

    full = results[next(iter(MODELS))]
    print("\nRegion recognition (Reg2RG; the area named in each RRA prefix vs the region given)\n")
    print("| region | Pre. | Rec. | F1 |")
    print("|---|---|---|---|")
    for region, m in full["recognition"].items():
        print(f"| {region} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |")

    print("\nTruth findings mentioned in their region's generated report\n")
    print("| region | findings | " + " | ".join(MODELS) + " |")
    print("|---|---|" + "---|" * len(MODELS))
    tot = {name: [0, 0] for name in MODELS}
    for region in REGION_NAMES:
        n = full["mentions"][region][1]
        if not n:
            continue
        cells = []
        for name in MODELS:
            hit = results[name]["mentions"][region][0]
            tot[name][0] += hit
            tot[name][1] += n
            cells.append(f"{hit}/{n}")
        print(f"| {region} | {n} | " + " | ".join(cells) + " |")
    print("| all | " + str(next(iter(tot.values()))[1]) + " | " + " | ".join(f"{h}/{n} ({100 * h / max(n, 1):.0f} %)" for h, n in tot.values()) + " |")

    print("\nPer-label CE (Reg2RG vs GLB only), tp/fp/fn\n")
    for lab in full["ce"]["per_label"]:
        cells = [f"{results[name]['ce']['per_label'][lab]['tp']}/{results[name]['ce']['per_label'][lab]['fp']}/{results[name]['ce']['per_label'][lab]['fn']}" for name in MODELS]
        print(f"  {lab:22s} " + "   ".join(cells))
    sid, ref, pred = full["examples"][0]
    print(f"\nExample {sid}\n  truth: {ref}\n  Reg2RG: {pred}\n  GLB only: {results['GLB only']['examples'][0][2]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: {kk: vv for kk, vv in v.items() if kk != "examples"} for k, v in results.items()}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
