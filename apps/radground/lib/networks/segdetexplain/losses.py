"""001 eq. 7-10: language CE over both rounds, Dice + BCE masks over both rounds, set-matched boxes in round 1.

* eq. 7: the LM's answer-token cross-entropy (labels cover the round-1 and round-2 answers of one
  dialogue; transformers' loss).
* eq. 8: MONAI ``DiceCELoss(sigmoid=True)`` (Dice + BCE-with-logits, equal weights) per mask, over
  the round-1 masks and the closer-look masks.
* eq. 9: per object, Hungarian matching (scipy, via the project's matcher: objectness + L1 + GIoU
  cost) of the Q queries to the K ground-truth boxes; L1 + (1 - GIoU) (``lib.metrics.boxes``) on
  matched pairs, and objectness BCE with unmatched queries as negatives.
* eq. 10: ``L = L_lang + lambda_seg L_seg + lambda_det L_det``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

from lib.metrics.boxes import giou_loss
from lib.networks.medgrounder.matcher import HungarianMatcher
from lib.networks.medgrounder.model import boxes_to_corners

from .config import SegDetExplainConfig


class SegDetExplainLoss:
    def __init__(self, cfg: SegDetExplainConfig):
        self.cfg = cfg
        self.dice_ce = DiceCELoss(sigmoid=True, lambda_dice=cfg.w_dice, lambda_ce=cfg.w_bce)
        self.matcher = HungarianMatcher(cfg.cost_obj, cfg.cost_l1, cfg.cost_giou)

    def segmentation(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Eq. 8 term for a stack of masks: logits and targets (N, H, W)."""
        if logits.shape[0] == 0:
            return logits.sum() * 0.0
        return self.dice_ce(logits[:, None], targets[:, None].float())

    def detection(self, boxes: torch.Tensor, logits: torch.Tensor, targets: Sequence[torch.Tensor]) -> torch.Tensor:
        """Eq. 9: boxes (N, Q, 4) cxcywh, logits (N, Q), targets: N tensors (K_n, 4) of corner boxes in [0, 1]."""
        if boxes.shape[0] == 0:
            return boxes.sum() * 0.0
        tgt_cc = [_corners_to_cc(t.to(boxes)) for t in targets]
        matches = self.matcher(logits, boxes, tgt_cc)
        obj_target = torch.zeros_like(logits)
        l1, giou, n_box = boxes.sum() * 0.0, boxes.sum() * 0.0, 0
        for n, (q, t) in enumerate(matches):
            if len(q) == 0:
                continue
            obj_target[n, q] = 1.0
            pred = boxes[n, q]
            gt = tgt_cc[n][t]
            l1 = l1 + F.l1_loss(pred, gt, reduction="sum")
            giou = giou + giou_loss(boxes_to_corners(pred), targets[n].to(boxes)[t], reduction="sum")
            n_box += len(q)
        n_box = max(n_box, 1)
        obj = F.binary_cross_entropy_with_logits(logits, obj_target)
        c = self.cfg
        return c.w_l1 * l1 / n_box + c.w_giou * giou / n_box + c.w_obj * obj

    def total(self, lm: torch.Tensor, seg: Optional[torch.Tensor], det: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Eq. 10 with the parts for logging."""
        zero = lm * 0.0
        seg = zero if seg is None else seg
        det = zero if det is None else det
        c = self.cfg
        return {"loss": c.lambda_lm * lm + c.lambda_seg * seg + c.lambda_det * det, "lm": lm.detach(), "seg": seg.detach(), "det": det.detach()}


def _corners_to_cc(b: torch.Tensor) -> torch.Tensor:
    """(K, 4) corner boxes -> centre-size (the matcher's and the L1 term's form)."""
    b = b.reshape(-1, 4)
    return torch.cat([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], dim=1)
