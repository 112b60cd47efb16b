#!/usr/bin/env python
"""Score Reg2RG (004) on held-out synthetic chest studies, next to the "GLB only" ablation (Table 5).

Both models run through the app's own ``reg2rg`` infer task (bundled checkpoints:
``pretrained_reg2rg.pt`` and ``pretrained_reg2rg_glb.pt``, i.e. ``--conf reg2rg_features glb``),
with region masks from the ``anatomy`` task, on test seeds never used in training. Printed:

- NLG (BLEU-1..4, METEOR, ROUGE-L) and clinical efficacy (P/R/F1) on the whole report (region
  texts joined in canonical region order, RRA prefixes stripped), full model vs GLB only;
- region recognition P/R/F1 per region (Table 3; the full model only: GLB only has no region to
  recognise);
- per region, the finding-mention precision/recall/F1 of both models: the findings the synthetic
  truth has in that region against those the region's generated text names;
- per CE label tp/fp/fn, and one example report.

``--masks truth`` feeds the study's own structure map instead of the anatomy task's (an oracle
segmentation module, see :class:`StudyStructures`).

    .venv/bin/python scripts/evaluate_reg2rg.py --n 20 --preset small

``accuracy_rows`` is the accuracy-table interface (scripts/accuracy_table.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time

from scripts_common import APP_DIR, heldout_studies, infer_task  # noqa: F401  (puts the app on sys.path)

from lib.data.region_reports import REGION_NAMES  # noqa: E402
from lib.data.studies import image_path, organ_path, read_truth  # noqa: E402
from lib.data.synthetic.study import study_id_for  # noqa: E402
from lib.metrics.report_generation import (  # noqa: E402
    FINDING_KIND_LABEL,
    clinical_efficacy,
    nlg_scores,
    finding_scores_from_counts,
    region_finding_labels,
    region_recognition,
    study_region_finding_counts,
)
from lib.metrics.paired_bootstrap import paired_difference  # noqa: E402

logger = logging.getLogger(__name__)

MODELS = {"Reg2RG (TXT+GEO+GLB, RRA)": "txt,geo,glb", "GLB only": "glb"}
FULL, GLB = list(MODELS)
GLB_CHECKPOINT = "reg2rg_glb.pt"  # the tiny variant's GLB-only file in a model dir (what the train task writes)
ACCURACY_TITLE = "Reg2RG (004) Tables 1-3: report generation per chest region, vs the GLB-only ablation"
ACCURACY_HEADLINE = "finding F1"


class StudyStructures:
    """Stands in for the anatomy task with the study's own structure map: an oracle segmentation
    module, whose regions hold the findings as the training masks do (the anatomy network leaves
    much of an effusion, a consolidation or a mass out of its region). It separates what the model
    reads from what the segmentation misses, as 004 §4.3.3 does for SAT's lung/pleura masks."""

    def __init__(self, studies: str):
        self.studies = studies

    def __call__(self, request):
        sid = os.path.basename(request["image"])[: -len(".nii.gz")]
        out = request["image"] + ".structures.nii.gz"
        shutil.copyfile(organ_path(self.studies, sid), out)
        return out, {"cache": "miss", "backend": "study structure map", "model": {"version": "truth"}}


def run_model(features: str, studies: str, ids: list[str], max_new_tokens: int, model_dir: str | None = None, masks: str = "anatomy", extra_conf: dict | None = None) -> dict[str, list[dict]]:
    """Study id -> the infer task's per-region records (``model_dir``: its ``reg2rg*.pt`` win over the
    bundled ones; ``masks``: ``anatomy`` = the anatomy task's, as served, or ``truth`` = :class:`StudyStructures`)."""
    conf = {**(extra_conf or {}), "reg2rg_features": features, **({"model_dir": model_dir} if model_dir else {})}
    task = infer_task("reg2rg", conf)
    if task is None:
        raise RuntimeError("no reg2rg task: run scripts/train_reg2rg.py")
    if masks == "truth":
        task.anatomy_task = StudyStructures(studies)
    out = {}
    for sid in ids:
        _, result = task({"image": image_path(studies, sid), "model": "reg2rg", "device": "cpu", "max_new_tokens": max_new_tokens})
        out[sid] = result["regions"]
    return out


def truth_labels_by_region(truth: dict) -> dict[str, set[str]]:
    """Region -> CE labels of the findings the synthetic truth places there."""
    out: dict[str, set[str]] = {}
    for f in truth["findings"]:
        out.setdefault(f["region"], set()).add(FINDING_KIND_LABEL[f["kind"]])
    return out


def score(ids: list[str], truths: dict[str, dict], answers: dict[str, list[dict]], meteor: bool = True) -> dict:
    refs, preds, ref_labels, pred_labels, region_refs, region_preds, pairs = [], [], [], [], [], [], []
    for sid in ids:
        truth = truths[sid]["region_reports"]
        got = {rec["region"]: rec["text"] for rec in answers[sid]}
        order = [r for r in REGION_NAMES if r in truth]
        refs.append(" ".join(truth[r] for r in order))
        preds.append(" ".join(got.get(r, "") for r in order if got.get(r)))
        ref_labels.append(region_finding_labels(truth))
        pred_labels.append(region_finding_labels({r: t for r, t in got.items() if t}))
        region_refs.append(truth_labels_by_region(truths[sid]))
        region_preds.append(got)
        pairs += [(rec["region"], rec["recognised_area"]) for rec in answers[sid]]
    per_study = study_region_finding_counts(region_refs, region_preds, REGION_NAMES)
    return {
        "nlg": nlg_scores(refs, preds, meteor=meteor),
        "ce": clinical_efficacy(ref_labels, pred_labels),
        "recognition": region_recognition(pairs, REGION_NAMES),
        "findings": finding_scores_from_counts(per_study, REGION_NAMES),
        "study_counts": [[sum(c[k] for c in study.values()) for k in ("tp", "fp", "fn")] for study in per_study],
        "examples": [(ids[0], refs[0], preds[0])],
    }


def model_arms(model_dir: str | None = None, extra_glb: list[str] | None = None) -> list[tuple[str, str, str | None]]:
    """(name, features, model dir) of each scored model: both of :data:`MODELS` from ``model_dir``
    (None: the bundled checkpoints), then one more GLB-only arm per ``extra_glb`` folder, so that
    another ablation checkpoint (e.g. one trained on the full model's budget) is scored on the same
    studies in the same run."""
    arms = [(name, features, model_dir) for name, features in MODELS.items()]
    for d in extra_glb or ():
        if not os.path.isfile(os.path.join(d, GLB_CHECKPOINT)):  # the infer task would fall back to the bundled one
            raise FileNotFoundError(f"--glb-model-dir {d}: no {GLB_CHECKPOINT} there")
        arms.append((f"{GLB} ({os.path.basename(os.path.normpath(d))})", MODELS[GLB], d))
    names = [a[0] for a in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"two GLB-only folders share a name: {names}")
    return arms


def evaluate(n: int, preset: str, max_new_tokens: int, meteor: bool = True, model_dir: str | None = None, masks: str = "anatomy", conf: dict | None = None, extra_glb: list[str] | None = None) -> tuple[dict[str, dict], list[int]]:
    """Scores of the models of :func:`model_arms` on ``n`` held-out chest studies (name -> :func:`score`), and the seeds."""
    arms = model_arms(model_dir, extra_glb)
    studies, seeds = heldout_studies(n, preset, report_only_fraction=1.0, body="chest")
    try:
        ids = [study_id_for(s, "chest") for s in seeds]
        truths = {sid: read_truth(studies, sid) for sid in ids}
        results = {}
        for name, features, folder in arms:
            t0 = time.time()
            results[name] = score(ids, truths, run_model(features, studies, ids, max_new_tokens, folder, masks, conf), meteor=meteor)
            logger.info("%s: %d studies in %.0fs", name, len(ids), time.time() - t0)
    finally:
        shutil.rmtree(studies, ignore_errors=True)
    return results, seeds


def accuracy_rows(n_studies: int, small: bool) -> list[dict]:
    """Accuracy-table rows: per model, the whole report (NLG %, CE, finding F1) and per region
    (finding-mention P/R/F1, recognition F1; None where neither the truth nor the model has a finding).
    ``small``: fewer new tokens (GLB only writes every region in one answer), no METEOR (its java start)."""
    results, _ = evaluate(n_studies, "small", 400 if small else 600, meteor=not small)
    rows = []
    for name, r in results.items():
        base = name == GLB
        nlg, ce, fnd = r["nlg"], r["ce"], r["findings"]
        row = {"model": name, "baseline": base, "group": "all", "n": n_studies}
        row.update({f"{k} %": (None if nlg[k] is None else 100 * nlg[k]) for k in ("BLEU-1", "BLEU-4", "METEOR", "ROUGE-L")})
        row.update({"CE P": ce["precision"], "CE R": ce["recall"], "CE F1": ce["f1"]})
        row.update({"finding P": fnd["all"]["precision"], "finding R": fnd["all"]["recall"], "finding F1": fnd["all"]["f1"], "recognition F1": None})
        rows.append(row)
        for region in REGION_NAMES:
            m = fnd[region]
            rec = None if base else r["recognition"][region]["f1"]
            scored = bool(m["tp"] + m["fp"] + m["fn"])
            rows.append({"model": name, "baseline": base, "group": region, "n": m["tp"] + m["fn"], "finding P": m["precision"] if scored else None,
                         "finding R": m["recall"] if scored else None, "finding F1": m["f1"] if scored else None, "recognition F1": rec})
    return rows


def fmt(x, pct=True):
    return "n/a" if x is None else (f"{100 * x:.2f}" if pct else f"{x:.3f}")


def print_report(results: dict[str, dict], n: int, preset: str, seeds: list[int], masks: str = "anatomy") -> None:
    source = "the anatomy task" if masks == "anatomy" else "the study's own structure map (oracle)"
    print(f"\nHeld-out synthetic chest CT ({n} studies, preset {preset}, test seeds {seeds[0]}-{seeds[-1]}); region masks from {source}\n")
    print("| model | BL-1 | BL-2 | BL-3 | BL-4 | MTR | RG-L | CE Pre. | CE Rec. | CE F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        nl, ce = r["nlg"], r["ce"]
        print(f"| {name} | " + " | ".join(fmt(nl[k]) for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L")) + " | " + " | ".join(fmt(ce[k], False) for k in ("precision", "recall", "f1")) + " |")

    full = results[FULL]
    print("\nRegion recognition (Reg2RG; the area named in each RRA prefix vs the region given)\n")
    print("| region | Pre. | Rec. | F1 |")
    print("|---|---|---|---|")
    for region, m in full["recognition"].items():
        print(f"| {region} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} |")

    print("\nFindings of the synthetic truth mentioned in their region's generated report: precision / recall / F1 (tp/fp/fn)\n")
    print("| region | truth findings | " + " | ".join(f"{name} P / R / F1 (tp/fp/fn)" for name in results) + " |")
    print("|---|---|" + "---|" * len(results))
    for region in [*REGION_NAMES, "all"]:
        m0 = full["findings"][region]
        if region != "all" and not (m0["tp"] + m0["fn"] + m0["fp"] + sum(results[k]["findings"][region]["fp"] for k in results)):
            continue  # a region with no finding in the truth and none written by either model
        cells = []
        for name in results:
            m = results[name]["findings"][region]
            cells.append(f"{m['precision']:.2f} / {m['recall']:.2f} / {m['f1']:.2f} ({m['tp']}/{m['fp']}/{m['fn']})")
        label = "**all**" if region == "all" else region
        print(f"| {label} | {m0['tp'] + m0['fn']} | " + " | ".join(cells) + " |")

    print_paired(results)

    print(f"\nPer-label CE ({' vs '.join(results)}), tp/fp/fn\n")
    for lab in full["ce"]["per_label"]:
        cells = [f"{results[name]['ce']['per_label'][lab]['tp']}/{results[name]['ce']['per_label'][lab]['fp']}/{results[name]['ce']['per_label'][lab]['fn']}" for name in results]
        print(f"  {lab:22s} " + "   ".join(cells))
    sid, ref, pred = full["examples"][0]
    print(f"\nExample {sid}\n  truth: {ref}\n  Reg2RG: {pred}")
    for name in [k for k in results if k != FULL]:
        print(f"  {name}: {results[name]['examples'][0][2]}")


def print_paired(results: dict[str, dict], n_resamples: int = 2000) -> None:
    """Reg2RG against each GLB-only arm, study by study: is its lead in findings mentioned more than
    the luck of the studies drawn? (paired bootstrap over studies, :mod:`lib.metrics.paired_bootstrap`)"""
    others = [k for k in results if k != FULL]
    if not others or len(results[FULL]["study_counts"]) < 2:
        return
    print(f"\nReg2RG minus each GLB-only arm, paired bootstrap over studies ({n_resamples} resamples, 95 % percentile interval; p: share of resamples where Reg2RG is not ahead)\n")
    print("| against | findings mentioned (tp) | 95 % CI | p | finding F1 | 95 % CI | p |")
    print("|---|---|---|---|---|---|---|")
    for name in others:
        d = paired_difference(results[FULL]["study_counts"], results[name]["study_counts"], n_resamples=n_resamples)
        t, f = d["tp"], d["f1"]
        print(f"| {name} | {t['difference']:+.0f} | {t['low']:+.0f} .. {t['high']:+.0f} | {t['p_not_ahead']:.3f} | {f['difference']:+.3f} | {f['low']:+.3f} .. {f['high']:+.3f} | {f['p_not_ahead']:.3f} |")


def conf_pair(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value) for ``--conf``; a malformed pair is a usage error, not a traceback."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="held-out chest studies")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--max-new-tokens", type=int, default=600)
    ap.add_argument("--json", default=None, help="also write the scores here")
    ap.add_argument("--masks", default="anatomy", choices=("anatomy", "truth"), help="region masks: the anatomy task's (as served) or the study's own (oracle)")
    ap.add_argument("--model-dir", default=None, help="score reg2rg.pt / reg2rg_glb.pt from this folder instead of the bundled checkpoints")
    ap.add_argument("--glb-model-dir", action="append", default=[], metavar="DIR", help="also score the GLB-only reg2rg_glb.pt in DIR (repeatable): another ablation checkpoint on the same studies")
    ap.add_argument("--conf", action="append", default=[], type=conf_pair, metavar="KEY=VALUE", help="app conf for both tasks, e.g. reg2rg_histogram_token=true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    conf = dict(args.conf)
    try:
        model_arms(args.model_dir, args.glb_model_dir)  # a wrong folder fails now, not after the first model's studies
    except (FileNotFoundError, ValueError) as e:
        ap.error(str(e))
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # the infer tasks log every transform at INFO
    logger.setLevel(logging.INFO)  # progress of this script only

    results, seeds = evaluate(args.n, args.preset, args.max_new_tokens, model_dir=args.model_dir, masks=args.masks, conf=conf, extra_glb=args.glb_model_dir)
    print_report(results, args.n, args.preset, seeds, args.masks)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: {kk: vv for kk, vv in v.items() if kk != "examples"} for k, v in results.items()}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
