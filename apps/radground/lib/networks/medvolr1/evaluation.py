"""DSC and IoU of grounded queries (002 §3.1.1), on the input grid when the item carries its
source-grid target, else on the slice sequence. A malformed answer scores 0 (no mask)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .pipeline import ground
from .rewards import dice
from .samples import QueryItem


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def evaluate_items(policy, propagator, items: Sequence[QueryItem], max_new_tokens: int = 96) -> list[dict]:
    rows = []
    for it in items:
        on_source = it.source_mask is not None
        g = ground(policy, propagator, it.seq, it.query.text, to_source=on_source, max_new_tokens=max_new_tokens)
        truth = it.source_mask if on_source else it.seq_mask
        pred = (g.source_mask if on_source else g.seq_mask) if g.ok else np.zeros_like(truth, bool)
        rows.append({"study": it.query.study_id, "query": it.query.text, "kind": it.query.kind, "format_ok": g.ok, "dsc": dice(pred, truth) if truth.any() else float(not pred.any()), "iou": iou(pred, truth)})
    return rows


def summarise(rows: Sequence[dict]) -> dict:
    if not rows:
        return {"n": 0, "DSC %": None, "IoU %": None, "format %": None}
    return {
        "n": len(rows),
        "DSC %": 100.0 * float(np.mean([r["dsc"] for r in rows])),
        "IoU %": 100.0 * float(np.mean([r["iou"] for r in rows])),
        "format %": 100.0 * float(np.mean([r["format_ok"] for r in rows])),
    }
