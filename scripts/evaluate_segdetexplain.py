#!/usr/bin/env python
"""Score Seg-det-explain (001) on held-out synthetic slices (test seeds, never trained on).

Prints, per target (organ or "<organ> lesion") and overall:

* Dice % and HD95 mm of the final masks (closer look on) and of the round-1 masks (closer look
  off): 001 Table 1 (Dice) and Table 4 (with vs without the closer look);
* mAP@0.1 % of the detection branch vs boxes taken from the mask (connected components; area
  confidence = component area / slice area, max-prob confidence = the highest mask probability in
  the component): 001 Table 7 (MONAI's COCO metric at IoU 0.1);
* position agreement %: the position word the answer states vs the one measured on its own mask;
  routing %: answers with routing tokens on slices that show the object, without them on slices
  that do not (eq. 2).

Each question asks for description, segmentation and detection ("segdet"); a routing token the
model leaves out is appended (as the infer task's ``force_routing`` does), so every positive slice
is scored. The weights are the app's (``scripts_common.infer_task``: bundled or ``--model-dir``).

    .venv/bin/python scripts/evaluate_segdetexplain.py --n 4 --preset small
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import defaultdict
from typing import Any, Optional, Sequence

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
for p in (APP_DIR, os.path.join(ROOT, "scripts")):
    if p not in sys.path:
        sys.path.insert(0, p)

ACCURACY_TITLE = "Seg-det-explain (001) Tables 1/4/7: Dice/HD95 with vs without closer look, detection branch vs mask->box (mAP@0.1)"
ACCURACY_HEADLINE = "Dice %"
logger = logging.getLogger(__name__)


def mask_boxes(prob: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mask -> boxes: one per connected component, with (area, max-prob) confidences."""
    from scipy import ndimage

    lab, n = ndimage.label(prob >= threshold, structure=np.ones((3, 3), bool))
    boxes, area, peak = [], [], []
    for c, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        comp = lab[sl] == c
        boxes.append([sl[0].start, sl[1].start, sl[0].stop, sl[1].stop])
        area.append(comp.sum() / prob.size)
        peak.append(float(prob[sl][comp].max()))
    return np.asarray(boxes, float).reshape(-1, 4), np.asarray(area, float), np.asarray(peak, float)


def average_precision(preds: Sequence[tuple[np.ndarray, np.ndarray]], gts: Sequence[np.ndarray], iou: float = 0.1) -> Optional[float]:
    """AP at one IoU over a set of slices of one class (MONAI's COCO matching and metric)."""
    from monai.apps.detection.metrics.coco import COCOMetric
    from monai.apps.detection.metrics.matching import matching_batch
    from monai.data.box_utils import box_iou

    if not gts or sum(len(g) for g in gts) == 0:
        return None
    metric = COCOMetric(classes=["object"], iou_list=(iou,), iou_range=(iou, iou, 0.1), max_detection=(100,), verbose=False)
    res = matching_batch(
        box_iou,
        metric.get_iou_thresholds(),
        [b for b, _ in preds],
        [np.zeros(len(b), int) for b, _ in preds],
        [s for _, s in preds],
        list(gts),
        [np.zeros(len(g), int) for g in gts],
    )
    out, _ = metric(res)
    return float(out[f"AP_IoU_{iou:.2f}_MaxDet_100"])


def evaluate(model, seeds: Sequence[int], preset: str, max_per_target: int = 0, closer: bool = True) -> dict[str, Any]:
    """Per-target lists of slice scores and the detection inputs (see module docstring)."""
    from lib.data.appearance import mask_position, stated_position
    from lib.data.slice_grounding import DET, QUESTIONS, SEG, synthetic_samples
    from lib.metrics.segmentation import dice, hd95

    thr = model.cfg.mask_threshold
    per = defaultdict(lambda: defaultdict(list))
    for seed in seeds:
        samples = synthetic_samples([seed], preset)
        count = defaultdict(int)
        for x in samples:
            positive = bool(x.mask.any())
            key = (x.target, positive)
            if max_per_target and count[key] >= max_per_target:
                continue
            count[key] += 1
            if not positive:  # routing: no token expected
                out = model.predict(x.image, QUESTIONS["segdet"].format(name=x.target), x.target, want=(), closer=False)
                per[x.target]["routing"].append(not out["emitted"])
                continue
            out = model.predict(x.image, QUESTIONS["segdet"].format(name=x.target), x.target, want=(SEG, DET), closer=closer)
            p = per[x.target]
            p["routing"].append(SEG in out["emitted"] or DET in out["emitted"])
            r1 = out["round1_prob"] >= thr
            fin = out["prob"] >= thr
            p["dice"].append(dice(fin, x.mask))
            p["hd95"].append(hd95(fin, x.mask, x.spacing))
            p["dice_r1"].append(dice(r1, x.mask))
            p["hd95_r1"].append(hd95(r1, x.mask, x.spacing))
            p["gt_boxes"].append(x.boxes)
            p["det"].append((out["boxes"], out["scores"]))
            b, area, peak = mask_boxes(out["prob"], thr)
            p["mask_area"].append((b, area))
            p["mask_peak"].append((b, peak))
            said = stated_position(out["text"])
            if fin.any():
                p["position"].append(said is not None and said == mask_position(fin, x.image))
    return per


def summarise(per: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the tables: the model (closer look), round 1 only, mask->box (two confidences)."""
    def mean(v):
        return float(np.mean(v)) if len(v) else None

    def pct(v):
        return None if v is None else 100.0 * v

    rows = []
    groups = sorted(per) + ["all"]
    for g in groups:
        ps = list(per.values()) if g == "all" else [per[g]]
        cat = lambda key: [v for p in ps for v in p[key]]  # noqa: E731
        n = len(cat("dice"))
        if g == "all":  # mAP over targets (each target one class), as 001's tables average per class
            aps = {k: [average_precision(p[k], p["gt_boxes"]) for p in ps if p["gt_boxes"]] for k in ("det", "mask_area", "mask_peak")}
            ap = {k: mean([a for a in v if a is not None]) for k, v in aps.items()}
        else:
            ap = {k: average_precision(per[g][k], per[g]["gt_boxes"]) for k in ("det", "mask_area", "mask_peak")}
        rows.append({"model": "segdetexplain", "baseline": False, "group": g, "n": n, "Dice %": pct(mean(cat("dice"))), "HD95 mm": mean(cat("hd95")),
                     "mAP@0.1 %": pct(ap["det"]), "position agree %": pct(mean(cat("position"))), "routing %": pct(mean(cat("routing")))})
        rows.append({"model": "round 1 only (no closer look)", "baseline": True, "group": g, "n": n, "Dice %": pct(mean(cat("dice_r1"))), "HD95 mm": mean(cat("hd95_r1"))})
        rows.append({"model": "mask->box (area conf.)", "baseline": True, "group": g, "n": n, "mAP@0.1 %": pct(ap["mask_area"])})
        rows.append({"model": "mask->box (max-prob conf.)", "baseline": True, "group": g, "n": n, "mAP@0.1 %": pct(ap["mask_peak"])})
    return rows


def load_model(model_dir: Optional[str] = None):
    from scripts_common import infer_task

    task = infer_task("segdetexplain", {"model_dir": model_dir} if model_dir else {})
    if task.get_path() is None:
        raise RuntimeError("no segdetexplain checkpoint: run scripts/train_segdetexplain.py")
    return task.model()


def accuracy_rows(n_studies: int, small: bool) -> list[dict]:
    """Table rows on ``n_studies`` held-out studies (``small``: 1 slice per target and study)."""
    import torch

    from lib.data.studies import split_seeds

    model = load_model()
    torch.manual_seed(0)
    per = evaluate(model, split_seeds("test", n_studies), "small", max_per_target=1 if small else 0)
    return summarise(per)


#: Compact table: (header, row model, row key).
COLUMNS = [
    ("Dice % closer", "segdetexplain", "Dice %"),
    ("Dice % round 1", "round 1 only (no closer look)", "Dice %"),
    ("HD95 mm closer", "segdetexplain", "HD95 mm"),
    ("HD95 mm round 1", "round 1 only (no closer look)", "HD95 mm"),
    ("mAP@0.1 % det. branch", "segdetexplain", "mAP@0.1 %"),
    ("mAP@0.1 % mask->box area", "mask->box (area conf.)", "mAP@0.1 %"),
    ("mAP@0.1 % mask->box max-prob", "mask->box (max-prob conf.)", "mAP@0.1 %"),
    ("position agree %", "segdetexplain", "position agree %"),
    ("routing %", "segdetexplain", "routing %"),
]


def print_table(rows: list[dict]) -> None:
    """One line per target: Tables 1, 4 and 7 side by side."""
    by = {(r["group"], r["model"]): r for r in rows}
    groups = list(dict.fromkeys(r["group"] for r in rows))
    print("| target | slices | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for g in groups:
        cells = []
        for _, model, key in COLUMNS:
            v = by.get((g, model), {}).get(key)
            cells.append("n/a" if v is None else f"{v:.1f}")
        print(f"| {g} | {by[(g, 'segdetexplain')]['n']} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4, help="held-out studies (test seeds)")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--max-per-target", type=int, default=0, help="slices per target and study (0 = every selected slice)")
    ap.add_argument("--model-dir", default=None, help="use <dir>/segdetexplain.pt instead of the bundled weights")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    from lib.data.studies import split_seeds

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_model(args.model_dir)
    per = evaluate(model, split_seeds("test", args.n), args.preset, args.max_per_target)
    print_table(summarise(per))


if __name__ == "__main__":
    main()
