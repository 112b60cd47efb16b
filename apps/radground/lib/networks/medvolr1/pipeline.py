"""Query -> evidence anchor -> 3D mask: the policy's answer lifted by the propagator (002 Fig. 1).

Shared by the infer task, the evaluation and GRPO's rollouts, so all three read the policy's
output the same way (strictly: a malformed answer is a :class:`FormatFailure`, never a guess).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from .answer import FormatFailure, Parsed, ParsedAnswer, parse_response
from .policy import MedVolPolicy
from .propagator import SlicePropagator, propagate
from .volume import SliceSequence, mask_to_source, to_sequence


@dataclass
class Grounding:
    text: str  # the policy's raw response
    parsed: Parsed
    confidence: float
    seq_mask: Optional[np.ndarray] = None  # (T, S, S), None on format failure
    source_mask: Optional[np.ndarray] = None  # on the input grid
    greedy_failure: Optional[FormatFailure] = None  # the malformed greedy answer a sample replaced

    @property
    def ok(self) -> bool:
        return isinstance(self.parsed, ParsedAnswer)


def answer(policy: MedVolPolicy, seq: SliceSequence, query: str, max_new_tokens: int = 96) -> tuple[str, Parsed, float]:
    """Greedy response, its strict parse, and its confidence."""
    text, parsed, conf, _ = answer_with_fallback(policy, seq, query, max_new_tokens, 0)
    return text, parsed, conf


def answer_with_fallback(
    policy: MedVolPolicy, seq: SliceSequence, query: str, max_new_tokens: int = 96, samples: int = 0, temperature: float = 0.5, seed: int = 0
) -> tuple[str, Parsed, float, Optional[FormatFailure]]:
    """:func:`answer`, and when the greedy response is malformed and ``samples`` > 0 (serving
    only), that many responses sampled at ``temperature`` (seeded: a request is reproducible): the
    well-formed one with the highest confidence is answered instead. The 4th element is the greedy
    failure a sample replaced (None when the greedy answer stands). When no sample is well-formed
    the greedy failure is the answer. Evaluation and GRPO use the greedy answer only: they score the
    policy as it is."""
    prompt = policy.prompt(seq, query)
    ids = policy.generate(prompt, n=1, do_sample=False, max_new_tokens=max_new_tokens)
    text = policy.decode(ids)[0]
    parsed = parse_response(text, seq.n_slices, seq.size)
    if isinstance(parsed, FormatFailure) and samples > 0:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            sampled = policy.generate(prompt, n=samples, do_sample=True, temperature=temperature, max_new_tokens=max_new_tokens)
        best = None
        for row, t in zip(sampled, policy.decode(sampled)):
            p = parse_response(t, seq.n_slices, seq.size)
            if isinstance(p, ParsedAnswer):
                c = policy.confidence(prompt, row[None])
                if best is None or c > best[2]:
                    best = (t, p, c, parsed)
        if best is not None:
            return best
    return text, parsed, policy.confidence(prompt, ids), None


#: another lift of the anchor: (sequence, key slice index, boxes) -> (sequence mask, source mask)
Lift = Callable[[SliceSequence, int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def ground(
    policy: MedVolPolicy,
    propagator: SlicePropagator,
    seq: SliceSequence,
    query: str,
    to_source: bool = True,
    max_new_tokens: int = 96,
    lift: Optional[Lift] = None,
    fallback_samples: int = 0,
) -> Grounding:
    """``lift`` replaces the slice propagator (MedSAM2, :mod:`.medsam2`) when given;
    ``fallback_samples``: see :func:`answer_with_fallback`."""
    text, parsed, conf, failure = answer_with_fallback(policy, seq, query, max_new_tokens, fallback_samples)
    if isinstance(parsed, FormatFailure):
        return Grounding(text, parsed, conf)
    boxes = np.asarray(parsed.boxes, float)
    if lift is not None:
        m, source = lift(seq, parsed.slice_index, boxes)
        return Grounding(text, parsed, conf, m, source if to_source else None, failure)
    m = propagate(propagator, seq.image, parsed.slice_index, boxes)
    return Grounding(text, parsed, conf, m, mask_to_source(m, seq) if to_source else None, failure)


def ground_volume(policy, propagator, volume_hu: np.ndarray, query: str, max_new_tokens: int = 96) -> tuple[Grounding, SliceSequence]:
    seq = to_sequence(volume_hu, policy.n_slices, policy.size)
    return ground(policy, propagator, seq, query, True, max_new_tokens), seq
