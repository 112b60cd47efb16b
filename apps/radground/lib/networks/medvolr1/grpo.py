"""GRPO's advantage and objective (002 eqs. 2-3), on per-token log-probabilities.

Hand-written rather than TRL's ``GRPOTrainer``: the policy reads a multi-image prompt (one image
per ``<slice k>``) built without the Qwen processor (it needs torchvision, not installable beside
the CPU torch here), and R_c runs the propagator per sample; TRL 1.16's trainer expects a
processor-driven dataset pipeline and its own generation loop. The loss below is the same
objective: eq. 3 averaged per token within a response (DeepSeekMath's form), the k3 estimator
exp(ref - logp) - (ref - logp) - 1 of KL(π_θ || π_ref), as TRL and the authors' code use.
"""
from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Eq. 2 over the last dimension (one group of G rewards per row): (r - mean) / (std + eps).
    A group whose rewards are all equal gets zero advantages (no signal, no update)."""
    r = torch.as_tensor(rewards, dtype=torch.float32)
    mean = r.mean(-1, keepdim=True)
    std = r.std(-1, keepdim=True, unbiased=True) if r.shape[-1] > 1 else torch.zeros_like(mean)
    return (r - mean) / (std + eps)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.01,
) -> tuple[torch.Tensor, dict]:
    """Eq. 3. ``logp``/``old_logp``/``ref_logp``: (G, L) log-probabilities of the sampled tokens
    under π_θ, π_θold and π_ref; ``mask`` (G, L) marks response tokens; ``advantages`` (G,)."""
    mask = mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.detach()[:, None]
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv)
    diff = ref_logp.detach() - logp
    kl = torch.exp(diff) - diff - 1.0
    per_token = surrogate - beta * kl
    per_seq = (per_token * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    loss = -per_seq.mean()
    with torch.no_grad():
        stats = {
            "kl": float(((kl * mask).sum(1) / mask.sum(1).clamp(min=1.0)).mean()),
            "clip_frac": float((((ratio - 1.0).abs() > clip_eps).to(logp.dtype) * mask).sum() / mask.sum().clamp(min=1.0)),
        }
    return loss, stats
