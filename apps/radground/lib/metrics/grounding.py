"""Generalised phrase grounding metrics (003 §3.5), per sentence and split by zero / single / multi-box.

Each sentence has a ground-truth box set G (0, 1 or many) and a predicted set P (after the
confidence threshold, and WBF when used). Boxes are corner boxes (2D or 3D) in one frame (voxels,
normalised or mm).

* **N-Acc** (zero-box sentences, after GREC): the fraction with P empty (correct abstention).
* **Precision@(F1=1, IoU>=0.5)**: per sentence, predicted and true boxes are paired one-to-one
  (Hungarian on IoU, scipy) and a pair counts when IoU >= 0.5; the sentence scores 1 when its
  F1 is exactly 1 - every true box found, no extra box. A zero-box sentence scores 1 iff P is
  empty. Reported as the fraction of sentences that score 1.
* **Centre-hit F1 (CH-F1)**: a predicted box hits when its centre lies inside a true box;
  precision = hitting predictions / predictions, recall = true boxes containing a predicted
  centre / true boxes, pooled over the sentences of a split (predictions on zero-box sentences
  are false positives).
* **Mask IoU / accuracy**: the union of a sentence's predicted boxes and the union of its true
  boxes are rasterised on the image grid and compared; mIoU is their mean IoU and "Acc" the
  fraction of sentences with IoU >= 0.5 - over groundable sentences (single and multi; the
  paper's overall Acc is consistent with leaving zero-box sentences out).

"overall" pools all sentences (zero-box ones count for P@F1=1 and CH-F1; N-Acc is only defined
on them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from lib.metrics.boxes import iou_matrix

CATEGORIES = ("zero", "single", "multi", "overall")


def _boxes(b, nd: Optional[int] = None) -> np.ndarray:
    a = np.asarray(b, dtype=float)
    if a.size == 0:
        return np.zeros((0, 2 * (nd or 3)))
    return a.reshape(-1, a.shape[-1])


def category(n_true: int) -> str:
    return "zero" if n_true == 0 else "single" if n_true == 1 else "multi"


def set_f1(pred, true, iou_threshold: float = 0.5) -> float:
    """F1 of one sentence's predicted vs true box sets at ``iou_threshold`` (1.0 when both are empty)."""
    p, t = _boxes(pred), _boxes(true)
    if len(p) == 0 and len(t) == 0:
        return 1.0
    if len(p) == 0 or len(t) == 0:
        return 0.0
    iou = iou_matrix(p, t).numpy()
    rows, cols = linear_sum_assignment(-iou)
    tp = int((iou[rows, cols] >= iou_threshold).sum())
    if tp == 0:
        return 0.0
    prec, rec = tp / len(p), tp / len(t)
    return 2 * prec * rec / (prec + rec)


def centre_hits(pred, true) -> tuple[int, int]:
    """(predictions whose centre lies in some true box, true boxes containing some predicted centre)."""
    p, t = _boxes(pred), _boxes(true)
    if len(p) == 0 or len(t) == 0:
        return 0, 0
    nd = p.shape[1] // 2
    c = (p[:, :nd] + p[:, nd:]) / 2.0
    inside = ((c[:, None, :] >= t[None, :, :nd]) & (c[:, None, :] <= t[None, :, nd:])).all(-1)  # (P, T)
    return int(inside.any(1).sum()), int(inside.any(0).sum())


def rasterise(boxes, shape: Sequence[int]) -> np.ndarray:
    """Union mask of corner boxes on a grid of ``shape`` (edges rounded to the nearest voxel edge)."""
    m = np.zeros(tuple(int(s) for s in shape), dtype=bool)
    b = _boxes(boxes, len(shape))
    nd = len(shape)
    for box in b:
        lo = np.clip(np.round(box[:nd]).astype(int), 0, shape)
        hi = np.clip(np.round(box[nd:]).astype(int), 0, shape)
        m[tuple(slice(a, z) for a, z in zip(lo, hi))] = True
    return m


def mask_iou(pred, true, shape: Sequence[int]) -> float:
    a, b = rasterise(pred, shape), rasterise(true, shape)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@dataclass
class SentenceScore:
    category: str
    n_pred: int
    n_true: int
    f1: float
    pred_hits: int
    true_hits: int
    mask_iou: Optional[float]  # None for zero-box sentences


def score_sentence(pred, true, shape: Sequence[int], iou_threshold: float = 0.5, with_mask: bool = True) -> SentenceScore:
    """All §3.5 quantities of one sentence; ``shape`` is the grid the boxes live on (mask IoU;
    ``with_mask=False`` skips it, e.g. while sweeping thresholds on centre-hit F1)."""
    p, t = _boxes(pred, len(shape)), _boxes(true, len(shape))
    ph, th = centre_hits(p, t)
    return SentenceScore(
        category=category(len(t)),
        n_pred=len(p),
        n_true=len(t),
        f1=set_f1(p, t, iou_threshold),
        pred_hits=ph,
        true_hits=th,
        mask_iou=mask_iou(p, t, shape) if (len(t) and with_mask) else None,
    )


def _nan_mean(v: list[float]) -> float:
    return float(np.mean(v)) if v else float("nan")


def summarise(scores: Iterable[SentenceScore]) -> dict[str, dict[str, float]]:
    """Per category (zero, single, multi, overall): n, N-Acc, P@F1=1, CH-F1 (with its P and R), mIoU, Acc
    - all in [0, 1], NaN where undefined (e.g. N-Acc of a split without zero-box sentences)."""
    scores = list(scores)
    out = {}
    for cat in CATEGORIES:
        s = scores if cat == "overall" else [x for x in scores if x.category == cat]
        n_pred = sum(x.n_pred for x in s)
        n_true = sum(x.n_true for x in s)
        prec = sum(x.pred_hits for x in s) / n_pred if n_pred else float("nan")
        rec = sum(x.true_hits for x in s) / n_true if n_true else float("nan")
        if n_pred and n_true:
            ch = 2 * prec * rec / (prec + rec) if (prec + rec) > 0 else 0.0
        elif not n_pred and not n_true:
            ch = float("nan")
        else:
            ch = 0.0
        zero = [x for x in s if x.category == "zero"]
        ious = [x.mask_iou for x in s if x.mask_iou is not None]
        out[cat] = {
            "n": len(s),
            "N-Acc": _nan_mean([float(x.n_pred == 0) for x in zero]),
            "P@F1=1": _nan_mean([float(x.f1 == 1.0) for x in s]),
            "CH-F1": ch,
            "CH-P": prec,
            "CH-R": rec,
            "mIoU": _nan_mean(ious),
            "Acc": _nan_mean([float(v >= 0.5) for v in ious]),
        }
    return out


def format_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Markdown table, one row per named result (e.g. "without WBF", "with WBF"), §5 column layout, in %."""
    cols = [("zero", "N-Acc"), ("single", "P@F1=1"), ("single", "CH-F1"), ("single", "Acc"), ("multi", "P@F1=1"), ("multi", "CH-F1"),
            ("multi", "Acc"), ("overall", "P@F1=1"), ("overall", "CH-F1"), ("overall", "Acc"), ("overall", "mIoU")]
    head = "| | " + " | ".join(f"{c} {m}" for c, m in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for name, res in results.items():
        vals = [res[c][m] for c, m in cols]
        lines.append(f"| {name} | " + " | ".join("-" if v != v else f"{100 * v:.1f}" for v in vals) + " |")
    counts = next(iter(results.values()))
    lines.append("")
    lines.append("sentences: " + ", ".join(f"{c} {counts[c]['n']}" for c in CATEGORIES))
    return "\n".join(lines)
