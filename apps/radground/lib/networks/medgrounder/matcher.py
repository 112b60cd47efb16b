"""Hungarian matching of predicted queries to a sentence's ground-truth boxes (003 eq. 2).

    C(i, j) = - lambda_g * p_i  +  lambda_L1 * ||b_j - b^_i||_1  -  lambda_GIoU * GIoU(b_j, b^_i)

with p_i = sigmoid(confidence logit) of query i, boxes in normalised centre-size form for the L1
term and as corner boxes for GIoU (MONAI's, via :mod:`lib.metrics.boxes`, 3D GIoU for CT). The
assignment minimising the total cost is scipy's ``linear_sum_assignment``; a sentence without
boxes matches nothing (every query's target is "not groundable").
"""
from __future__ import annotations

from typing import Sequence

import torch
from scipy.optimize import linear_sum_assignment

from lib.metrics.boxes import giou_matrix

from .model import boxes_to_corners


def matching_cost(logits: torch.Tensor, boxes: torch.Tensor, targets: torch.Tensor, w_g: float, w_l1: float, w_giou: float) -> torch.Tensor:
    """(N, M) cost of eq. 2 between N queries (``logits`` (N,), ``boxes`` (N, 2nd)) and M target boxes."""
    prob = logits.sigmoid()
    c_g = -prob[:, None].expand(-1, targets.shape[0])
    c_l1 = torch.cdist(boxes, targets, p=1)
    c_giou = -giou_matrix(_ordered(boxes_to_corners(boxes)), boxes_to_corners(targets))
    return w_g * c_g + w_l1 * c_l1 + w_giou * c_giou


def _ordered(corners: torch.Tensor) -> torch.Tensor:
    nd = corners.shape[-1] // 2
    return torch.cat([torch.minimum(corners[:, :nd], corners[:, nd:]), torch.maximum(corners[:, :nd], corners[:, nd:])], 1)


class HungarianMatcher:
    def __init__(self, cost_groundability: float = 1.0, cost_l1: float = 5.0, cost_giou: float = 2.0):
        self.w = (float(cost_groundability), float(cost_l1), float(cost_giou))

    @torch.no_grad()
    def __call__(self, pred_logits: torch.Tensor, pred_boxes: torch.Tensor, targets: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per sentence: (query indices, target indices), both int64, of equal length min(N, M)."""
        out = []
        for logits, boxes, tgt in zip(pred_logits.detach().float().cpu(), pred_boxes.detach().float().cpu(), targets):
            tgt = torch.as_tensor(tgt, dtype=torch.float32).reshape(-1, boxes.shape[-1]).cpu()
            if tgt.shape[0] == 0:
                out.append((torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)))
                continue
            cost = matching_cost(logits, boxes, tgt, *self.w)
            rows, cols = linear_sum_assignment(cost.numpy())
            out.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
        return out
