"""The two policy stages of 002: cold-start SFT (§2.4) and GRPO (§2.5), plain torch loops.

Both use AdamW with a 0.1 warm-up ratio and a cosine schedule (§3.1.3). GRPO: for each query the
policy samples G responses (temperature 1), each is parsed strictly and scored
(:mod:`.rewards`; a malformed response scores 0 on every term, R_f = 0 included, and still takes
part in the group's advantage), advantages are group-normalised (eq. 2) and the clipped
objective with a KL penalty to the frozen SFT policy (eq. 3) is stepped once per group
(π_old = π_θ at sampling time, so ρ = 1 at the step and the clip only matters for
``inner_steps`` > 1). Dropout is off during GRPO so the three log-probabilities are comparable. Why not TRL: see :mod:`.grpo`.
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


def _grpo_loop(policy, ref, propagator, items, s: GRPOSettings, rng, should_stop) -> list[dict]:
    params, opt, sched = _optimizer(policy, s.lr, s.steps * s.inner_steps, s.warmup_ratio)
    prop = (lambda img, k, boxes: propagate(propagator, img, k, boxes)) if propagator is not None else None
    stats = []
    for step in range(s.steps):
        t0 = time.time()
        groups = []
        for _ in range(max(1, s.queries_per_step)):
            it = items[int(rng.integers(len(items)))]
            prompt = policy.prompt(it.seq, it.query.text)
            ids = policy.generate(prompt, n=s.group_size, do_sample=True, temperature=s.temperature, max_new_tokens=s.max_new_tokens)
            parsed = [parse_response(t, it.seq.n_slices, it.seq.size) for t in policy.decode(ids)]
            terms = [compute_rewards(p, it.seq.image, it.seq_mask, prop, s.weights, s.delta) for p in parsed]
            rewards = torch.tensor([r.total for r in terms])
            policy.model.eval()  # dropout off (as TRL's disable_dropout): π_θ, π_old and π_ref must agree at ρ = 1
            with torch.no_grad():
                old = policy.token_logprobs(prompt, ids)
                ref_lp = policy.token_logprobs(prompt, ids, model=ref)
            groups.append((prompt, ids, policy.response_mask(ids), group_advantages(rewards), old, ref_lp, rewards, terms))
        for _ in range(s.inner_steps):
            opt.zero_grad()
            for prompt, ids, mask, adv, old, ref_lp, _, _ in groups:
                loss, st = grpo_loss(policy.token_logprobs(prompt, ids), old, ref_lp, adv, mask, s.clip_eps, s.beta)
                (loss / len(groups)).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
        terms = [t for g in groups for t in g[7]]
        rec = {
            "step": step + 1,
            "reward": float(torch.cat([g[6] for g in groups]).mean()),
            **{f"R_{k}": float(np.mean([getattr(r, k) for r in terms])) for k in ("f", "a", "s", "c")},
            "loss": float(loss.detach()),
            **st,
            "seconds": round(time.time() - t0, 2),
        }
        stats.append(rec)
        logger.info("GRPO step %d/%d reward %.3f R_f %.2f R_a %.2f R_s %.2f R_c %.2f kl %.4f", step + 1, s.steps, rec["reward"], rec["R_f"], rec["R_a"], rec["R_s"], rec["R_c"], rec["kl"])
        if should_stop():
            break
    return stats
