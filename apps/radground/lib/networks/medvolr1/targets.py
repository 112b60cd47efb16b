"""SFT targets (002 §2.4): Top-K visibility key slice + connected-component boxes, and a templated
<think> text.

The paper trains without chain-of-thought annotations; the <think> block of the SFT target is a
short template built from the query's resolved target and the evidence (which structure, which
slice, how many parts), so the tiny policy learns the format and the link between the implicit
query and its referent, and GRPO may change it freely.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from lib.metrics.boxes import instance_boxes

from .answer import format_response


def slice_areas(seq_mask: np.ndarray) -> np.ndarray:
    """F_t: foreground pixels of each sequence slice."""
    return np.asarray(seq_mask, bool).reshape(seq_mask.shape[0], -1).sum(1)


def topk_key_slice(seq_mask: np.ndarray, k: int, rng: Optional[np.random.Generator] = None) -> int:
    """Rank slices by foreground area, sample one of the Top-K non-empty ones (0-based)."""
    areas = slice_areas(seq_mask)
    if areas.max() == 0:
        raise ValueError("the target is empty on every slice")
    order = np.argsort(-areas, kind="stable")
    top = [int(t) for t in order[: max(1, k)] if areas[t] > 0]
    rng = rng or np.random.default_rng(0)
    return top[int(rng.integers(len(top)))]


def component_boxes(slice_mask: np.ndarray, max_boxes: int = 8) -> np.ndarray:
    """Boxes [x1, y1, x2, y2] (upper edges exclusive) of the connected components of a 2D mask,
    largest first, at most ``max_boxes``."""
    lab, n = ndimage.label(np.asarray(slice_mask, bool))
    if n == 0:
        return np.zeros((0, 4))
    ids, boxes = instance_boxes(lab)
    sizes = np.bincount(lab.ravel())[ids]
    return boxes[np.argsort(-sizes, kind="stable")][:max_boxes]


def think_text(target_name: str, slice_number: int, n_boxes: int) -> str:
    parts = "one region" if n_boxes == 1 else f"{n_boxes} regions"
    return f"The query refers to the {target_name}. It is best seen on slice {slice_number}, as {parts}."


def sft_target(seq_mask: np.ndarray, target_name: str, k: int = 3, rng: Optional[np.random.Generator] = None, max_boxes: int = 8) -> str:
    """The whole SFT response for one query."""
    t = topk_key_slice(seq_mask, k, rng)
    boxes = component_boxes(seq_mask[t], max_boxes)
    return format_response(think_text(target_name, t + 1, len(boxes)), t + 1, boxes)
