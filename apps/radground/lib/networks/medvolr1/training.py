"""The two policy stages of 002: cold-start SFT (§2.4) and GRPO (§2.5), plain torch loops.

Both use AdamW with a 0.1 warm-up ratio and a cosine schedule (§3.1.3). GRPO: for each query the
policy samples G responses at ``temperature``, each is parsed strictly and scored (:mod:`.rewards`;
a malformed response scores 0 on every term, R_f = 0 included, and still takes part in the group's
advantage), advantages are group-normalised (eq. 2) and the clipped objective with a KL penalty to
the frozen SFT policy (eq. 3) is stepped once per batch of groups. π_old is the sampling policy:
its log-probabilities (and π_ref's) are taken at the sampling temperature without the suppressed
tokens, so ρ = 1 at the step and the clip only matters for ``inner_steps`` > 1. Dropout is off
during GRPO so the three log-probabilities are comparable. Why not TRL: see :mod:`.grpo`.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from transformers import get_cosine_schedule_with_warmup

from .answer import parse_response
from .grpo import grpo_loss, group_advantages
from .policy import MedVolPolicy
from .propagator import SlicePropagator, propagate
from .rewards import compute_rewards
from .samples import QueryItem
from .targets import sft_target

logger = logging.getLogger(__name__)


@dataclass
class SFTSettings:
    epochs: int = 4
    lr: float = 1e-3
    batch_size: int = 4
    topk: int = 3
    warmup_ratio: float = 0.1
    seed: int = 0


@dataclass
class GRPOSettings:
    steps: int = 30
    group_size: int = 4
    #: queries (groups) whose losses are averaged into one update (the paper's batch over GPUs)
    queries_per_step: int = 1
    #: train only the LoRA adapters in GRPO (the paper's RL stage is LoRA), even where SFT trained the base
    lora_only: bool = False
    lr: float = 1e-4
    beta: float = 0.01
    clip_eps: float = 0.2
    inner_steps: int = 1
    #: sampling temperature of the rollouts; the log-probabilities of π_θ, π_old and π_ref use the same
    #: temperature, so π_old is the sampling policy. 1.0 is TRL's default (0.5 was tried on the tiny
    #: policy and lost held-out accuracy: see the README)
    temperature: float = 1.0
    max_new_tokens: int = 96
    delta: int = 5
    weights: Mapping[str, float] = field(default_factory=lambda: {"f": 1.0, "a": 1.0, "s": 1.0, "c": 1.0})
    warmup_ratio: float = 0.1
    seed: int = 0


def _optimizer(policy: MedVolPolicy, lr: float, total: int, warmup_ratio: float):
    params = [p for p in policy.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = get_cosine_schedule_with_warmup(opt, int(warmup_ratio * total), max(total, 1))
    return params, opt, sched


def train_sft(policy: MedVolPolicy, items: Sequence[QueryItem], s: SFTSettings, should_stop: Callable[[], bool] = lambda: False) -> list[float]:
    """Answer-only CE on Top-K targets, redrawn each epoch; returns the mean loss per epoch."""
    rng = np.random.default_rng(s.seed)
    torch.manual_seed(s.seed)
    steps_per_epoch = (len(items) + s.batch_size - 1) // s.batch_size
    params, opt, sched = _optimizer(policy, s.lr, s.epochs * steps_per_epoch, s.warmup_ratio)
    cache: dict = {}
    history = []
    policy.model.train()
    for epoch in range(s.epochs):
        order, losses = rng.permutation(len(items)), []
        for b in range(0, len(order), s.batch_size):
            batch = [items[i] for i in order[b : b + s.batch_size]]
            triples = [(it.seq, it.query.text, sft_target(it.seq_mask, it.query.target.replace("_", " "), s.topk, rng)) for it in batch]
            loss = policy.sft_loss(triples, cache)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if should_stop():
                return history + [float(np.mean(losses))]
        history.append(float(np.mean(losses)))
        logger.info("SFT epoch %d/%d loss %.4f", epoch + 1, s.epochs, history[-1])
    return history


def train_grpo(
    policy: MedVolPolicy,
    propagator: Optional[SlicePropagator],
    items: Sequence[QueryItem],
    s: GRPOSettings,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[dict]:
    """``s.steps`` GRPO updates of ``s.queries_per_step`` queries (a group of G samples each); per-step stats."""
    rng = np.random.default_rng(s.seed)
    torch.manual_seed(s.seed)
    ref = copy.deepcopy(policy.model).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    frozen = [p for n, p in policy.model.named_parameters() if s.lora_only and p.requires_grad and "lora_" not in n]
    for p in frozen:
        p.requires_grad_(False)
    try:
        return _grpo_loop(policy, ref, propagator, items, s, rng, should_stop)
    finally:
        for p in frozen:
            p.requires_grad_(True)


@dataclass
class Group:
    """One query's rollout: G sampled responses, their rewards and advantages (eq. 2), and the
    per-token log-probabilities of the sampling policy (π_old) and of π_ref, both at the sampling
    temperature."""

    prompt: object
    ids: torch.Tensor
    mask: torch.Tensor
    rewards: torch.Tensor
    advantages: torch.Tensor
    old_logp: torch.Tensor
    ref_logp: torch.Tensor
    terms: list


def rollout(policy: MedVolPolicy, ref, it: QueryItem, s: GRPOSettings, score: Callable) -> Group:
    """Sample G responses to one query and score them; ``score(texts, item)`` -> list of :class:`RewardTerms`."""
    prompt = policy.prompt(it.seq, it.query.text)
    ids = policy.generate(prompt, n=s.group_size, do_sample=True, temperature=s.temperature, max_new_tokens=s.max_new_tokens)
    terms = score(policy.decode(ids), it)
    rewards = torch.tensor([r.total for r in terms], dtype=torch.float32)
    policy.model.eval()  # dropout off (as TRL's disable_dropout): π_θ, π_old and π_ref must agree at ρ = 1
    with torch.no_grad():
        old = policy.token_logprobs(prompt, ids, temperature=s.temperature)
        ref_lp = policy.token_logprobs(prompt, ids, model=ref, temperature=s.temperature)
    return Group(prompt, ids, policy.response_mask(ids), rewards, group_advantages(rewards), old, ref_lp, terms)


def grpo_update(policy: MedVolPolicy, groups: Sequence[Group], opt, sched, params, s: GRPOSettings) -> dict:
    """``s.inner_steps`` optimiser steps of eq. 3 averaged over the groups; stats of the last one."""
    for inner in range(s.inner_steps):
        opt.zero_grad()
        losses, kls, clips, ratios = [], [], [], []
        for g in groups:
            logp = policy.token_logprobs(g.prompt, g.ids, temperature=s.temperature)
            if inner == 0:  # π_θ = π_old before the first step: the ratio must be 1 (a wrong log-prob shows here)
                ratios.append(float(((logp.detach() - g.old_logp).abs() * g.mask).max()))
            loss, st = grpo_loss(logp, g.old_logp, g.ref_logp, g.advantages, g.mask, s.clip_eps, s.beta)
            (loss / len(groups)).backward()
            losses.append(float(loss.detach()))
            kls.append(st["kl"])
            clips.append(st["clip_frac"])
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        opt.step()
        sched.step()
        if inner == 0:
            first_ratio_dev = max(ratios) if ratios else 0.0
    return {"loss": float(np.mean(losses)), "kl": float(np.mean(kls)), "clip_frac": float(np.mean(clips)), "grad_norm": grad_norm, "max_logratio_at_start": first_ratio_dev}


def group_stats(groups: Sequence[Group]) -> dict:
    """How much signal the step had: tied groups (all G rewards equal, so zero advantage), format rate, reward spread."""
    terms = [t for g in groups for t in g.terms]
    return {
        "reward": float(torch.cat([g.rewards for g in groups]).mean()),
        **{f"R_{k}": float(np.mean([getattr(r, k) for r in terms])) for k in ("f", "a", "s", "c")},
        "tied_groups": float(np.mean([float(g.rewards.std() < 1e-6) for g in groups])),
        "reward_std": float(np.mean([float(g.rewards.std()) for g in groups])),
        "response_tokens": float(np.mean([float(g.mask.sum(1).mean()) for g in groups])),
    }


def reward_scorer(propagator: Optional[SlicePropagator], s: GRPOSettings) -> Callable:
    """The composite reward of 002 §2.5 on strictly parsed responses (a malformed one scores 0)."""
    prop = (lambda img, k, boxes: propagate(propagator, img, k, boxes)) if propagator is not None else None

    def score(texts, it):
        return [compute_rewards(parse_response(t, it.seq.n_slices, it.seq.size), it.seq.image, it.seq_mask, prop, s.weights, s.delta) for t in texts]

    return score


def _epochs(n: int, rng):
    """Query indices epoch after epoch, each epoch a fresh permutation (every query is visited equally often)."""
    while True:
        yield from (int(i) for i in rng.permutation(n))


def _grpo_loop(policy, ref, propagator, items, s: GRPOSettings, rng, should_stop) -> list[dict]:
    params, opt, sched = _optimizer(policy, s.lr, s.steps * s.inner_steps, s.warmup_ratio)
    score = reward_scorer(propagator, s)
    order = _epochs(len(items), rng)
    stats = []
    for step in range(s.steps):
        t0 = time.time()
        groups = [rollout(policy, ref, items[next(order)], s, score) for _ in range(max(1, s.queries_per_step))]
        rec = {"step": step + 1, **group_stats(groups), **grpo_update(policy, groups, opt, sched, params, s), "lr": float(sched.get_last_lr()[0]), "seconds": round(time.time() - t0, 2)}
        stats.append(rec)
        logger.info(
            "GRPO step %d/%d reward %.3f (std %.3f, tied %.2f) R_f %.2f R_a %.2f R_s %.2f R_c %.2f kl %.4f clip %.3f",
            step + 1, s.steps, rec["reward"], rec["reward_std"], rec["tied_groups"], rec["R_f"], rec["R_a"], rec["R_s"], rec["R_c"], rec["kl"], rec["clip_frac"],
        )
        if should_stop():
            break
    return stats
