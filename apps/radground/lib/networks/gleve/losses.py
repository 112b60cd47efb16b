"""GLeVE's training objective (000 eqs. 5, 7, 8).

    L_total = delta * lambda_seg * L_seg + lambda_weak * L_weak,   delta = 1 iff the study has masks
    L_weak  = lambda_uni * L_uni + lambda_con * (L_attr + L_org) + lambda_sep * L_sep

* L_uni (eq. 5): sum over lesions of the entropy of p_i = softmax(s_i / tau) over its candidates.
* L_attr: sum over a in {V, mu} and lesions of (|a_i - a_i^r| / (|a_i^r| + eps))^2, with V_i the
  predicted volume (sum of refined probabilities x voxel volume) and mu_i their probability-weighted
  mean HU. When the report gives a density word instead of a number, a_i^r is the point of the
  implied HU interval nearest to a_i (zero loss inside the interval). For HU the denominator is
  max(|a^r|, ``hu_floor``): near 0 HU (cysts, water) the paper's relative error explodes. By
  default each term is Huber-ised (quadratic up to a relative error of ``attr_delta`` = 1, linear
  beyond): with the pure square a mask spilling over its root cube gives terms of 10^3, whose
  gradient spikes stall Adam for many steps (seen in the overfit runs); ``attr_delta=None`` restores
  the paper's form.
* L_org: sum over lesions of the fraction of predicted lesion mass outside the binary organ mask.
* L_sep: sum over lesion pairs of their soft overlap sum_x p_i p_j divided by the smaller mass.
* L_seg: MONAI DiceCELoss (sigmoid) between each lesion's refined logits and its own mask, plus
  (weight ``lambda_resp``) Dice + class-balanced BCE on the response map read as logits
  S_i / ``resp_temperature`` (:func:`response_loss`).
  The paper does not say which outputs L_seg supervises; without the response term nothing tells
  the queries *where* a lesion is (candidate extraction is discrete), so it is on by default.
  Also in L_seg (weight ``lambda_ver``), for studies with masks: the cross-entropy of eq. 5's
  p_i = softmax(s_i / tau) against the candidate that overlaps lesion i's mask best
  (:func:`verification_loss`). The paper trains eq. 4 only through L_uni, which makes p_i peaked but
  not right: P* = argmax_k s_i^(k) is not differentiable, so nothing else tells W_s and eta which
  candidate is the described lesion.

* L_con on the response map (weight ``lambda_weak_response``, a departure): eq. 7's L_attr + L_org
  also applied to q_i = sigmoid(S_i / ``resp_temperature``), lesion i's whole-volume prediction
  before candidate extraction. The paper applies them to "the prediction" of lesion i; applied only
  to the refined mask of the *chosen* candidate they cannot move the lesion: a report-only study
  whose verifier picks the wrong blob has that blob's volume and HU pulled toward the report, which
  reinforces the mistake. On the response map the same report facts (inside organ o(i), V_i^r ml,
  density mu_i^r) say where the lesion can be, whatever candidate was chosen. Its volume term is
  |log(V_i / V_i^r)| (Huber-ised): with the relative error, an undecided response covering the
  crop (10^3-10^5 x the lesion) gave losses of 10^5 that flattened the response map (first run:
  validation LLS 0 for 30 epochs).

* L_pseudo (weight ``lambda_weak_pseudo``, a departure, report-only studies): the report picks a
  pseudo-target among lesion i's candidates - the one candidate whose evidence xi (eq. 4: organ
  overlap, volume and HU agreement) passes ``pseudo_min`` while no other does - and that candidate
  trains the response map (:func:`response_loss`) and the verifier (:func:`verification_loss`) as
  an annotated mask would. The reason: eq. 7 never says *which* candidate is lesion i (argmax is
  not differentiable), so from a weak model L_uni and L_con sharpen and fit whatever was chosen.
  Measured on a 10 %-masks model (81 lesions of 34 studies): the verifier's choice hits 46 %, the
  unique report-consistent candidate (found for 23 lesions) 74 %.
  Total: L = delta lambda_seg L_seg + lambda_weak L_weak + (1 - delta) lambda_weak_pseudo L_pseudo.

The paper gives no lambda, tau or eps values; :class:`LossWeights` holds the chosen defaults.
Terms whose inputs are missing (no candidate, no reported value, no mask) contribute zero.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from torch import nn

from lib.networks.gleve.report_graph import LesionTarget


@dataclass
class LossWeights:
    """Weights of eqs. 7-8 and the constants of eq. 5 (paper silent: chosen values).

    lambda_weak = 0.01 because L_con's gradient also reaches the response map through the coarse
    mask: at 0.5 it dragged the lesion's response down and a mask-supervised 32^3 overfit failed
    for 3 of 3 seeds; at 0.1 the synthetic 32^3 scene learned, but on real-size synthetic studies
    L_attr (~15) dominated and the response map stayed flat (val Dice 0 after 20 epochs); at 0.01
    the same run reached val Dice 0.14 / LR 0.42 by epoch 10.
    """

    lambda_seg: float = 1.0
    lambda_weak: float = 0.01
    lambda_uni: float = 0.1
    lambda_con: float = 1.0
    lambda_sep: float = 1.0
    tau: float = 0.5
    eps: float = 1e-6
    hu_floor: float = 20.0
    lambda_resp: float = 1.0  # response-map term of L_seg (0: refined masks only)
    resp_temperature: float = 0.1
    lambda_ver: float = 1.0  # candidate-choice CE of L_seg (0: eq. 4 trained by L_uni only, as the paper)
    attr_delta: Optional[float] = 1.0  # L_attr terms quadratic up to this relative error, linear beyond (None: the paper's pure square)
    lambda_weak_response: float = 0.0  # L_con on the response map (0: on the refined mask only, as the paper)
    lambda_weak_pseudo: float = 0.0  # report-consistent pseudo-target of report-only studies (0: off, as the paper)
    pseudo_min: tuple[float, float, float] = (0.5, 0.3, 0.3)  # xi thresholds: organ overlap, volume, HU agreement

    @classmethod
    def from_dict(cls, d: Optional[Mapping[str, Any]]) -> "LossWeights":
        d = dict(d or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown GLeVE loss settings: {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_entropy(scores: torch.Tensor, tau: float, eps: float = 1e-8) -> torch.Tensor:
    """-sum_k p_k log(p_k + eps), p = softmax(scores / tau)."""
    p = torch.softmax(scores / tau, dim=-1)
    return -(p * torch.log(p + eps)).sum(-1)


def uniqueness_loss(scores: Sequence[Optional[torch.Tensor]], tau: float = 0.5, eps: float = 1e-8) -> torch.Tensor:
    """L_uni of eq. 5 over lesions (each entry: (K_i,) scores, or None for no candidate)."""
    terms = [candidate_entropy(s, tau, eps) for s in scores if s is not None and s.numel() > 0]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


def lesion_volumes(probs: torch.Tensor, voxel_ml: float) -> torch.Tensor:
    """V_i (ml) of soft masks (N, X, Y, Z)."""
    return probs.flatten(1).sum(1) * float(voxel_ml)


def lesion_mean_hu(probs: torch.Tensor, hu_image: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """mu_i: probability-weighted mean HU of soft masks (N, X, Y, Z)."""
    p = probs.flatten(1)
    return (p @ hu_image.reshape(-1).to(p)) / (p.sum(1) + eps)


def relative_error(pred: torch.Tensor, lo: float, hi: float, floor: float = 0.0, eps: float = 1e-6) -> torch.Tensor:
    """|a - a^r| / (max(|a^r|, floor) + eps) with a^r the point of [lo, hi] nearest to a."""
    ref = pred.detach().clamp(lo, hi)
    return (pred - ref).abs() / (ref.abs().clamp_min(floor) + eps)


def squared_error(e: torch.Tensor, delta: Optional[float] = None) -> torch.Tensor:
    """e^2, or with ``delta`` its Huber form: e^2 for e <= delta, delta (2 e - delta) beyond."""
    if delta is None:
        return e**2
    return torch.where(e <= delta, e**2, delta * (2.0 * e - delta))


def relative_error_sq(
    pred: torch.Tensor, lo: float, hi: float, floor: float = 0.0, eps: float = 1e-6, delta: Optional[float] = None
) -> torch.Tensor:
    """One L_attr term: the squared (or Huber, see :func:`squared_error`) relative error."""
    return squared_error(relative_error(pred, lo, hi, floor, eps), delta)


def attribute_loss(
    volumes: torch.Tensor,
    mean_hu: Optional[torch.Tensor],
    targets: Sequence[LesionTarget],
    organ_mean_hu: Sequence[Optional[float]],
    valid: Optional[torch.Tensor] = None,
    hu_floor: float = 20.0,
    eps: float = 1e-6,
    delta: Optional[float] = None,
    log_volume: bool = False,
) -> torch.Tensor:
    """L_attr: volume and mean-HU agreement with the report, summed over lesions (pure squares
    unless ``delta`` is given). ``log_volume``: the volume error is |log(V_i / V_i^r)| instead of
    the relative error, whose gradient per voxel (1 / V^r) is huge for a small lesion when V_i is
    a whole-volume response many times the lesion's size."""
    terms = []
    for i, t in enumerate(targets):
        if valid is not None and not bool(valid[i]):
            continue
        if t.has_volume and log_volume:
            terms.append(squared_error(torch.log((volumes[i] + eps) / float(t.volume_ml)).abs(), delta))
        elif t.has_volume:
            terms.append(relative_error_sq(volumes[i], float(t.volume_ml), float(t.volume_ml), 0.0, eps, delta))
        interval = t.hu_interval(organ_mean_hu[i] if i < len(organ_mean_hu) else None)
        if mean_hu is not None and interval is not None:
            terms.append(relative_error_sq(mean_hu[i], interval[0], interval[1], hu_floor, eps, delta))
    if not terms:
        return volumes.new_zeros(())
    return torch.stack(terms).sum()


def organ_loss(probs: torch.Tensor, organ_masks: torch.Tensor, valid: Optional[torch.Tensor] = None, eps: float = 1e-6) -> torch.Tensor:
    """L_org: sum_i (mass of p_i outside M_o(i)) / (mass of p_i)."""
    p = probs.flatten(1)
    outside = (p * (1.0 - organ_masks.flatten(1).to(p))).sum(1) / (p.sum(1) + eps)
    if valid is not None:
        outside = outside[valid.to(outside.device)]
    return outside.sum()


def separation_loss(probs: torch.Tensor, valid: Optional[torch.Tensor] = None, eps: float = 1e-6) -> torch.Tensor:
    """L_sep: sum over pairs i < j of sum_x p_i p_j / min(|p_i|, |p_j|)."""
    if valid is not None:
        probs = probs[valid.to(probs.device)]
    n = probs.shape[0]
    if n < 2:
        return probs.new_zeros(())
    p = probs.flatten(1)
    overlap = p @ p.t()
    mass = p.sum(1)
    norm = torch.minimum(mass[:, None], mass[None, :]) + eps
    iu = torch.triu_indices(n, n, offset=1, device=p.device)
    return (overlap / norm)[iu[0], iu[1]].sum()


_DICE_CE = DiceCELoss(sigmoid=True)
_DICE = DiceLoss(sigmoid=True)


def seg_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L_seg: DiceCE between refined logits (N, X, Y, Z) and per-lesion masks (N, X, Y, Z)."""
    if logits.shape[0] == 0:
        return logits.new_zeros(())
    return _DICE_CE(logits.unsqueeze(1), targets.unsqueeze(1).to(logits))


def response_loss(responses: torch.Tensor, targets: torch.Tensor, temperature: float = 0.1, max_pos_weight: float = 50.0) -> torch.Tensor:
    """Response-map term of L_seg: MONAI Dice + class-balanced BCE between S_i / temperature (as
    logits) and lesion i's mask. The BCE's positive weight is #background / #lesion voxels (at most
    ``max_pos_weight``): unweighted, the background (> 99 % of the voxels) pushes every response
    down together and the lesion is never singled out."""
    if responses.shape[0] == 0:
        return responses.new_zeros(())
    logits = (responses / temperature).unsqueeze(1)
    t = targets.unsqueeze(1).to(responses)
    pos = t.flatten(1).sum(1)
    neg = t[0].numel() - pos
    pos_weight = (neg / pos.clamp_min(1.0)).clamp(1.0, max_pos_weight).view(-1, 1, 1, 1, 1)
    bce = F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight)
    return _DICE(logits, t) + bce


def verification_loss(scores: Sequence[Optional[torch.Tensor]], targets: Sequence[Optional[int]], tau: float = 0.5) -> torch.Tensor:
    """Sum over lesions of -log p_i^(k*) with p_i = softmax(s_i / tau) and k* the candidate that
    matches lesion i's annotated mask (``None``: no such candidate, no term)."""
    terms = [
        F.cross_entropy((s / tau).unsqueeze(0), torch.tensor([int(k)], device=s.device))
        for s, k in zip(scores, targets)
        if s is not None and k is not None and s.numel() > 1
    ]
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


def consistency_terms(
    probs: torch.Tensor,
    targets: Sequence[LesionTarget],
    organ_masks: torch.Tensor,
    organ_mean_hu: Sequence[Optional[float]],
    hu_image: Optional[torch.Tensor],
    voxel_ml: float,
    valid: Optional[torch.Tensor],
    organ_valid: Optional[torch.Tensor],
    w: LossWeights,
    log_volume: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_attr, L_org) of soft masks (N, X, Y, Z) against the report."""
    vol = lesion_volumes(probs, voxel_ml)
    mu = lesion_mean_hu(probs, hu_image, w.eps) if hu_image is not None else None
    l_attr = attribute_loss(vol, mu, targets, organ_mean_hu, valid, w.hu_floor, w.eps, w.attr_delta, log_volume)
    return l_attr, organ_loss(probs, organ_masks, organ_valid, w.eps)


def weak_loss(
    probs: torch.Tensor,
    scores: Sequence[Optional[torch.Tensor]],
    targets: Sequence[LesionTarget],
    organ_masks: torch.Tensor,
    organ_mean_hu: Sequence[Optional[float]],
    hu_image: Optional[torch.Tensor],
    voxel_ml: float,
    valid: Optional[torch.Tensor] = None,
    organ_valid: Optional[torch.Tensor] = None,
    weights: Optional[LossWeights] = None,
    responses: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_weak of eq. 7 and its parts. ``valid`` (N,) marks lesions with a prediction;
    ``organ_valid`` (N,) those whose organ mask is known. With ``responses`` (N, X, Y, Z) and
    ``lambda_weak_response`` > 0, L_con is also taken on sigmoid(S_i / resp_temperature) (part
    ``con_response``; see the module docstring)."""
    w = weights or LossWeights()
    n = probs.shape[0]
    organ_known = None if organ_valid is None else organ_valid.to(probs.device)
    valid = torch.ones(n, dtype=torch.bool, device=probs.device) if valid is None else valid.to(probs.device)
    organ_valid = valid if organ_known is None else (organ_known & valid)
    l_uni = uniqueness_loss(scores, w.tau).to(probs.device)
    l_attr, l_org = consistency_terms(probs, targets, organ_masks, organ_mean_hu, hu_image, voxel_ml, valid, organ_valid, w)
    l_sep = separation_loss(probs, valid, w.eps)
    con_resp = probs.new_zeros(())
    if responses is not None and w.lambda_weak_response > 0 and responses.shape[0] > 0:
        q = torch.sigmoid(responses / w.resp_temperature)
        con_resp = sum(consistency_terms(q, targets, organ_masks, organ_mean_hu, hu_image, voxel_ml, None, organ_known, w, log_volume=True))
    total = w.lambda_uni * l_uni + w.lambda_con * (l_attr + l_org) + w.lambda_sep * l_sep + w.lambda_weak_response * con_resp
    return total, {"uni": l_uni, "attr": l_attr, "org": l_org, "sep": l_sep, "con": l_attr + l_org, "con_response": con_resp}


def report_consistent_candidate(evidence: torch.Tensor, minimum: Sequence[float] = (0.5, 0.3, 0.3)) -> Optional[int]:
    """The one candidate whose evidence xi (K, 5) agrees with the report: organ overlap, volume and
    HU agreement at least ``minimum`` (a fact the report does not state is not checked; one fact at
    least must be). None when no candidate or more than one does."""
    if evidence is None or evidence.numel() == 0:
        return None
    ev = evidence.detach()
    ok = ev[:, 0] >= minimum[0]
    ok &= (ev[:, 1] >= minimum[1]) | (ev[:, 3] == 0)
    ok &= (ev[:, 2] >= minimum[2]) | (ev[:, 4] == 0)
    ok &= (ev[:, 3] + ev[:, 4]) > 0
    return int(ok.nonzero()[0]) if int(ok.sum()) == 1 else None


def pseudo_target_loss(lesions: Sequence[Any], weights: LossWeights) -> torch.Tensor:
    """L_pseudo: response + verification loss toward each lesion's report-consistent candidate."""
    terms = []
    for les in lesions:
        if les.verification is None or les.verification.scores.numel() < 1:
            continue
        k = report_consistent_candidate(les.verification.evidence, weights.pseudo_min)
        if k is None:
            continue
        mask = les.candidates[k].mask.to(les.response.dtype)
        term = response_loss(les.response.unsqueeze(0), mask.unsqueeze(0), weights.resp_temperature)
        terms.append(term + verification_loss([les.verification.scores], [k], weights.tau).to(term.device))
    if not terms:
        return torch.zeros(())
    return torch.stack(terms).sum()


def total_loss(l_seg: torch.Tensor, l_weak: torch.Tensor, has_mask: bool, weights: Optional[LossWeights] = None) -> torch.Tensor:
    """Eq. 8."""
    w = weights or LossWeights()
    delta = 1.0 if has_mask else 0.0
    return delta * w.lambda_seg * l_seg + w.lambda_weak * l_weak


class GLeVELoss(nn.Module):
    """Eq. 8 on a :class:`~lib.networks.gleve.model.GLeVEOutput`."""

    def __init__(self, weights: Optional[LossWeights | Mapping[str, Any]] = None):
        super().__init__()
        self.weights = weights if isinstance(weights, LossWeights) else LossWeights.from_dict(weights)

    def forward(self, out: Any, target_masks: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """``target_masks`` (N, X, Y, Z): each report lesion's own mask (None: report-only study)."""
        logits = out.refined_logits()
        device = logits.device
        if logits.shape[0] == 0:
            zero = out.features.sum() * 0.0
            keys = ("total", "seg", "seg_refined", "seg_response", "seg_verification", "weak", "uni", "attr", "org", "sep", "con", "con_response", "pseudo")
            return {k: zero for k in keys}
        probs = torch.sigmoid(logits)
        valid = torch.tensor([les.refined_logits is not None for les in out.lesions], device=device)
        organ_valid = torch.tensor([les.organ_mask is not None for les in out.lesions], device=device)
        weak, parts = weak_loss(
            probs,
            [les.verification.scores if les.verification is not None else None for les in out.lesions],
            [les.target for les in out.lesions],
            out.organ_masks(),
            [les.organ_mean_hu for les in out.lesions],
            out.hu_image,
            out.voxel_ml,
            valid=valid,
            organ_valid=organ_valid,
            weights=self.weights,
            responses=out.responses,
        )
        has_mask = target_masks is not None
        zero = logits.new_zeros(())
        seg_ref = seg_loss(logits, target_masks.to(device)) if has_mask else zero
        seg_resp = zero
        if has_mask and self.weights.lambda_resp > 0:
            seg_resp = response_loss(out.responses, target_masks.to(device), self.weights.resp_temperature)
        seg_ver = zero
        if has_mask and self.weights.lambda_ver > 0:
            seg_ver = verification_loss(
                [les.verification.scores if les.verification is not None else None for les in out.lesions],
                [les.chosen if les.teacher_forced else None for les in out.lesions],
                self.weights.tau,
            ).to(device)
        seg = seg_ref + self.weights.lambda_resp * seg_resp + self.weights.lambda_ver * seg_ver
        total = total_loss(seg, weak, has_mask, self.weights)
        pseudo = zero
        if not has_mask and self.weights.lambda_weak_pseudo > 0:
            pseudo = pseudo_target_loss(out.lesions, self.weights).to(device)
            total = total + self.weights.lambda_weak_pseudo * pseudo
        if not total.requires_grad and out.features.requires_grad:  # nothing predicted: keep backward() valid
            total = total + 0.0 * out.features.sum()
        return {
            "total": total, "seg": seg, "seg_refined": seg_ref, "seg_response": seg_resp, "seg_verification": seg_ver,
            "weak": weak, **parts, "pseudo": pseudo,
        }
