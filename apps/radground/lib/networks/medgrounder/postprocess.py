"""From N scored queries to the final boxes of a sentence (003 §4.0.2, §5.3.2).

1. keep queries whose confidence sigmoid(logit) >= threshold (paper: 0.8, the centre-hit F1 peak
   on validation; re-chosen on our validation split by ``scripts/evaluate_medgrounder.py``);
2. optionally merge redundant detections with weighted box fusion at IoU 0.1 - the
   ``ensemble-boxes`` package's ``weighted_boxes_fusion`` (2D) / ``weighted_boxes_fusion_3d`` (CT).

Boxes here are normalised corner boxes in [0, 1] (what ensemble-boxes expects). A sentence with
no surviving query is "not groundable".
"""
from __future__ import annotations

import numpy as np
import torch
from ensemble_boxes import weighted_boxes_fusion, weighted_boxes_fusion_3d

from .model import boxes_to_corners


def scored_corner_boxes(logits: torch.Tensor, boxes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """One sentence's (N,) logits and (N, 2nd) centre-size boxes -> (N, 2nd) corners in [0, 1], (N,) confidences."""
    corners = boxes_to_corners(boxes.detach().float().cpu()).clamp(0.0, 1.0).numpy()
    nd = corners.shape[1] // 2
    corners = np.concatenate([np.minimum(corners[:, :nd], corners[:, nd:]), np.maximum(corners[:, :nd], corners[:, nd:])], 1)
    return corners, logits.detach().float().sigmoid().cpu().numpy()


def select_boxes(corners: np.ndarray, scores: np.ndarray, threshold: float, wbf: bool = False, wbf_iou: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Threshold, then (optionally) weighted box fusion. Returns (K, 2nd) boxes and (K,) scores, best first."""
    corners, scores = np.asarray(corners, float), np.asarray(scores, float)
    keep = scores >= float(threshold)
    b, s = corners[keep], scores[keep]
    # degenerate (zero-extent) boxes carry no region; ensemble-boxes drops them too
    nd = corners.shape[1] // 2 if corners.ndim == 2 and corners.shape[1] else 2
    ok = (b[:, nd:] - b[:, :nd] > 0).all(1) if len(b) else np.zeros(0, bool)
    b, s = b[ok], s[ok]
    if wbf and len(b) > 1:
        fuse = weighted_boxes_fusion_3d if nd == 3 else weighted_boxes_fusion
        b, s, _ = fuse([b.tolist()], [s.tolist()], [[0] * len(s)], iou_thr=float(wbf_iou), skip_box_thr=0.0)
        b, s = np.asarray(b, float).reshape(-1, 2 * nd), np.asarray(s, float)
    order = np.argsort(-s, kind="stable")
    return b[order], s[order]
