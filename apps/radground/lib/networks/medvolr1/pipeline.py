"""Query -> evidence anchor -> 3D mask: the policy's answer lifted by the propagator (002 Fig. 1).

Shared by the infer task, the evaluation and GRPO's rollouts, so all three read the policy's
output the same way (strictly: a malformed answer is a :class:`FormatFailure`, never a guess).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

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

    @property
    def ok(self) -> bool:
        return isinstance(self.parsed, ParsedAnswer)


def answer(policy: MedVolPolicy, seq: SliceSequence, query: str, max_new_tokens: int = 96) -> tuple[str, Parsed, float]:
    """Greedy response, its strict parse, and its confidence."""
    prompt = policy.prompt(seq, query)
    ids = policy.generate(prompt, n=1, do_sample=False, max_new_tokens=max_new_tokens)
    text = policy.decode(ids)[0]
    return text, parse_response(text, seq.n_slices, seq.size), policy.confidence(prompt, ids)


#: another lift of the anchor: (sequence, key slice index, boxes) -> (sequence mask, source mask)
Lift = Callable[[SliceSequence, int, np.ndarray], tuple[np.ndarray, np.ndarray]]


def ground(policy: MedVolPolicy, propagator: SlicePropagator, seq: SliceSequence, query: str, to_source: bool = True, max_new_tokens: int = 96, lift: Optional[Lift] = None) -> Grounding:
    """``lift`` replaces the slice propagator (MedSAM2, :mod:`.medsam2`) when given."""
    text, parsed, conf = answer(policy, seq, query, max_new_tokens)
    if isinstance(parsed, FormatFailure):
        return Grounding(text, parsed, conf)
    boxes = np.asarray(parsed.boxes, float)
    if lift is not None:
        m, source = lift(seq, parsed.slice_index, boxes)
        return Grounding(text, parsed, conf, m, source if to_source else None)
    m = propagate(propagator, seq.image, parsed.slice_index, boxes)
    return Grounding(text, parsed, conf, m, mask_to_source(m, seq) if to_source else None)


def ground_volume(policy, propagator, volume_hu: np.ndarray, query: str, max_new_tokens: int = 96) -> tuple[Grounding, SliceSequence]:
    seq = to_sequence(volume_hu, policy.n_slices, policy.size)
    return ground(policy, propagator, seq, query, True, max_new_tokens), seq
