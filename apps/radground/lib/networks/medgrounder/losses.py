"""MedGrounder's training objective (003 eqs. 3-4): groundability BCE + L1 + GIoU on matched queries.

    y_i = 1 if query i is matched to a ground-truth box by eq. 2, else 0
    L_g   = sum_i w_i BCE(sigmoid(logit_i), y_i) / sum_i w_i over the N queries of every sentence,
            w_i = 1 for matched queries, ``loss_noobject_weight`` (DETR/MDETR eos_coef, 0.1) otherwise
    L_loc = sum over matched pairs [ lambda_L1 * ||b - b^||_1 + lambda_GIoU * (1 - GIoU(b, b^)) ] / #boxes
    L     = lambda_g * L_g + L_loc

(DETR's normalisation by the number of target boxes in the batch; GIoU is 3D for CT.) A
zero-box sentence contributes only L_g with every target 0: the model learns to abstain. With
``aux_loss`` every decoder layer is matched and scored the same way (MDETR).

Why the no-object weight: a sentence with M boxes has N - M unmatched queries, and most report
sentences have no box at all, so well under 2 % of the BCE targets are positive. Unweighted, that
imbalance drove every confidence towards 0 when fine-tuning on finding boxes (stage 2): no query of
"Small bilateral pleural effusions." stayed above 0.2. DETR (and MDETR, which MedGrounder builds
on) down-weights the "no object" class by ``eos_coef`` = 0.1 for exactly this reason.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lib.metrics.boxes import giou_loss

from .config import MedGrounderConfig
from .matcher import HungarianMatcher
from .model import boxes_to_corners


class GroundingLoss(nn.Module):
    def __init__(self, cfg: MedGrounderConfig):
        super().__init__()
        self.cfg = cfg
        self.matcher = HungarianMatcher(cfg.cost_groundability, cfg.cost_l1, cfg.cost_giou)

    def single(self, out: dict[str, torch.Tensor], targets: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        logits, boxes = out["pred_logits"], out["pred_boxes"]
        tg = [torch.as_tensor(t, dtype=boxes.dtype, device=boxes.device).reshape(-1, boxes.shape[-1]) for t in targets]
        matches = self.matcher(logits, boxes, tg)
        y = torch.zeros_like(logits)
        src, dst = [], []
        for b, (qi, ti) in enumerate(matches):
            y[b, qi.to(logits.device)] = 1.0
            src.append(boxes[b, qi.to(boxes.device)])
            dst.append(tg[b][ti.to(boxes.device)])
        w = torch.where(y > 0, torch.ones_like(y), torch.full_like(y, float(self.cfg.loss_noobject_weight)))
        l_g = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * w).sum() / w.sum().clamp_min(1e-8)
        n_boxes = max(sum(int(t.shape[0]) for t in tg), 1)
        pb, tb = torch.cat(src), torch.cat(dst)
        if pb.shape[0]:
            l_l1 = F.l1_loss(pb, tb, reduction="sum") / n_boxes
            l_giou = giou_loss(boxes_to_corners(pb), boxes_to_corners(tb), reduction="sum") / n_boxes
        else:
            l_l1 = l_giou = boxes.sum() * 0.0
        total = self.cfg.loss_groundability * l_g + self.cfg.loss_l1 * l_l1 + self.cfg.loss_giou * l_giou
        return {"total": total, "groundability": l_g.detach(), "l1": l_l1.detach(), "giou": l_giou.detach()}

    def forward(self, out: dict[str, Any], targets: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``targets``: per sentence a (M, 2*nd) tensor of normalised centre-size boxes (M may be 0)."""
        res = self.single(out, targets)
        for aux in out.get("aux_outputs", []):
            res["total"] = res["total"] + self.single(aux, targets)["total"]
        return res
