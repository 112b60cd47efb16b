"""Qwen chat-format token sequences with images, answer-only labels and ``mm_token_type_ids``.

A dialogue is a list of turns; each turn has images (their ``<|image_pad|>`` counts), a user
question and, for training, the assistant answer. Labels are -100 everywhere except the answers
(and their ``<|im_end|>``), so the LM loss is the answer cross-entropy of every round (001 eq. 7).
``mm_token_type_ids`` (1 on image pads) is passed to the model: without it Qwen2.5-VL silently
falls back to 1-D positions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from .tokenizer import IM_END, IM_START, IMAGE_PAD, VISION_END, VISION_START

IGNORE = -100


@dataclass
class Turn:
    question: str
    n_image_tokens: list[int] = field(default_factory=list)
    answer: Optional[str] = None
    #: optional text put before each image (e.g. ``<slice k>``, MedVol-R1); empty = images only
    image_prefixes: list[str] = field(default_factory=list)


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_dialogue(tokenizer: PreTrainedTokenizerBase, turns: Sequence[Turn], add_generation_prompt: bool = False) -> dict[str, torch.Tensor]:
    """One sequence: ``input_ids``, ``labels``, ``attention_mask``, ``mm_token_type_ids`` (each (1, L)).

    Every turn but the last must carry an answer. With ``add_generation_prompt`` the last turn's
    answer is left out and the sequence ends with ``<|im_start|>assistant\\n`` (ready to generate).
    """
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    ids: list[int] = []
    labels: list[int] = []

    def add(piece: list[int], learn: bool) -> None:
        ids.extend(piece)
        labels.extend(piece if learn else [IGNORE] * len(piece))

    for t, turn in enumerate(turns):
        last = t == len(turns) - 1
        add(_ids(tokenizer, f"{IM_START}user\n"), False)
        if turn.image_prefixes and len(turn.image_prefixes) != len(turn.n_image_tokens):
            raise ValueError("image_prefixes needs one text per image")
        for i, n in enumerate(turn.n_image_tokens):
            if turn.image_prefixes:
                add(_ids(tokenizer, turn.image_prefixes[i]), False)
            add(_ids(tokenizer, VISION_START) + [image_id] * int(n) + _ids(tokenizer, VISION_END), False)
        add(_ids(tokenizer, f"{turn.question}{IM_END}\n{IM_START}assistant\n"), False)
        if last and add_generation_prompt:
            break
        if turn.answer is None:
            raise ValueError("every turn except a generation prompt's last needs an answer")
        add(_ids(tokenizer, turn.answer) + _ids(tokenizer, IM_END), True)
        add(_ids(tokenizer, "\n"), False)
    input_ids = torch.tensor([ids], dtype=torch.long)
    return {
        "input_ids": input_ids,
        "labels": torch.tensor([labels], dtype=torch.long),
        "attention_mask": torch.ones_like(input_ids),
        "mm_token_type_ids": (input_ids == image_id).long(),
    }


def pad_batch(items: Sequence[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad single sequences into a batch (labels with -100, masks with 0)."""
    n = max(x["input_ids"].shape[1] for x in items)
    fill = {"input_ids": pad_id, "labels": IGNORE, "attention_mask": 0, "mm_token_type_ids": 0}
    out = {}
    for key, value in fill.items():
        rows = [torch.nn.functional.pad(x[key], (0, n - x[key].shape[1]), value=value) for x in items if key in x]
        if rows:
            out[key] = torch.cat(rows)
    return out
