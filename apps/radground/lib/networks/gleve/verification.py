"""Region consistency verification of 000 eq. 4 and the candidate distribution of eq. 5.

    s_i^(k) = sigma(W_s [v_i^(k); z_i]) + eta^T xi_i^(k),     P_i* = argmax_k s_i^(k)
    p_i^(k) = softmax_k(s_i^(k) / tau)

v_i^(k) is F~ mean-pooled over the candidate's voxels. The evidence vector xi has, in order
(:data:`EVIDENCE_NAMES`):

* organ overlap: mean of the reported organ's soft map M~_o(i) over the candidate;
* volume agreement: exp(-|log(V / V_rep)|) = min(V, V_rep) / max(V, V_rep); 0 when no size;
* HU agreement: exp(-d(mu, HU_rep) / sigma_hu), d = distance of the candidate's mean HU to the
  reported value or density interval (0 inside it); 0 when the report gives neither;
* two indicators: volume reported, HU reported (equal for all candidates of one lesion, so they
  only matter to the absolute score, never to the choice).

eta starts at 1 for the three agreements and 0 for the indicators, so the evidence counts from
the first step. The evidence is computed from the (discrete) candidate masks and the HU image, so
it carries no gradient; W_s, eta, z and F~ receive gradients through s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from lib.networks.gleve.report_graph import LesionTarget

EVIDENCE_NAMES: tuple[str, ...] = ("organ_overlap", "volume_agreement", "hu_agreement", "volume_reported", "hu_reported")
ETA_INIT: tuple[float, ...] = (1.0, 1.0, 1.0, 0.0, 0.0)


@dataclass
class VerificationResult:
    scores: torch.Tensor  # (K,) s_i^(k)
    probs: torch.Tensor  # (K,) p_i^(k), temperature tau
    entropy: torch.Tensor  # () entropy of probs
    chosen: int  # argmax_k s
    evidence: torch.Tensor  # (K, 5)
    semantic: torch.Tensor  # (K,) sigma(W_s [v; z])


def masked_pool(feats: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean of features (C, X, Y, Z) over each mask (K, X, Y, Z) -> (K, C)."""
    m = masks.reshape(masks.shape[0], -1).to(feats.dtype)
    f = feats.reshape(feats.shape[0], -1)
    return (m @ f.t()) / m.sum(1, keepdim=True).clamp_min(1.0)


def region_statistics(masks: torch.Tensor, hu_image: Optional[torch.Tensor], voxel_ml: float) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Volume (ml) and mean HU of each mask (K, X, Y, Z)."""
    m = masks.reshape(masks.shape[0], -1).float()
    n = m.sum(1)
    vol = n * float(voxel_ml)
    if hu_image is None:
        return vol, None
    mu = (m @ hu_image.reshape(-1).float().to(m.device)) / n.clamp_min(1.0)
    return vol, mu


def interval_distance(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Distance of x to the interval [lo, hi] (0 inside)."""
    return torch.relu(lo - x) + torch.relu(x - hi)


def evidence_vectors(
    masks: torch.Tensor,
    target: LesionTarget,
    organ_map: Optional[torch.Tensor],
    hu_image: Optional[torch.Tensor],
    voxel_ml: float,
    organ_mean_hu: Optional[float] = None,
    sigma_hu: float = 20.0,
) -> torch.Tensor:
    """xi (K, 5) for candidate masks (K, X, Y, Z) of one lesion; see :data:`EVIDENCE_NAMES`."""
    with torch.no_grad():
        k = masks.shape[0]
        m = masks.reshape(k, -1).float()
        size = m.sum(1).clamp_min(1.0)
        xi = torch.zeros(k, len(EVIDENCE_NAMES), device=masks.device)
        if organ_map is not None:
            xi[:, 0] = (m @ organ_map.reshape(-1).float().to(m.device)) / size
        vol, mu = region_statistics(masks, hu_image, voxel_ml)
        if target.has_volume:
            xi[:, 1] = torch.exp(-torch.log(vol.clamp_min(1e-9) / float(target.volume_ml)).abs())
            xi[:, 3] = 1.0
        interval = target.hu_interval(organ_mean_hu)
        if interval is not None and mu is not None:
            xi[:, 2] = torch.exp(-interval_distance(mu, *interval) / float(sigma_hu))
            xi[:, 4] = 1.0
        return xi


class RegionVerifier(nn.Module):
    """Scores candidates of one lesion with eq. 4."""

    def __init__(self, channels: int, d: int, eta_init: Sequence[float] = ETA_INIT):
        super().__init__()
        self.w_s = nn.Linear(channels + d, 1)
        self.eta = nn.Parameter(torch.tensor([float(x) for x in eta_init]))

    def forward(self, region_feats: torch.Tensor, z: torch.Tensor, evidence: torch.Tensor, tau: float = 0.5) -> VerificationResult:
        """region_feats (K, C), z (d,), evidence (K, 5)."""
        k = region_feats.shape[0]
        joint = torch.cat([region_feats, z.unsqueeze(0).expand(k, -1)], dim=1)
        semantic = torch.sigmoid(self.w_s(joint)).squeeze(-1)
        scores = semantic + evidence.to(semantic.dtype) @ self.eta
        probs = torch.softmax(scores / tau, dim=0)
        entropy = -(probs * torch.log(probs + 1e-8)).sum()
        return VerificationResult(
            scores=scores, probs=probs, entropy=entropy, chosen=int(scores.detach().argmax()), evidence=evidence, semantic=semantic
        )


def organ_mean_hu(hu_image: Optional[torch.Tensor], organ_mask: Optional[torch.Tensor]) -> Optional[float]:
    """Mean HU inside a binary organ mask (None when either is missing or the mask is empty)."""
    if hu_image is None or organ_mask is None or not bool(organ_mask.any()):
        return None
    v = float(hu_image.reshape(-1)[organ_mask.reshape(-1).to(hu_image.device)].float().mean())
    return v if math.isfinite(v) else None
