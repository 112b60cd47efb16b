"""The MedVol-R1 policy: the shared Qwen2.5-VL-class VLM (:mod:`lib.networks.vlm`) reading a
uniformly sampled slice sequence, each slice prefixed ``<slice k>``, plus the query (002 §2.3-2.4).

The ``<slice 1>`` .. ``<slice T>`` tags are single added tokens. Slices are shown transposed
(rows = y) so the answer's boxes are (column, row) pixels of the S x S slice (:mod:`.volume`).
Besides prompting, this module gives what SFT and GRPO need: the answer-only cross-entropy of a
batch of (prompt, response) pairs, sampling G responses, and per-token log-probabilities of given
responses (π_θ, π_old, π_ref of eq. 3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from lib.networks.vlm import (
    Turn,
    VLMConfig,
    apply_lora,
    build_vlm,
    concat_inputs,
    encode_dialogue,
    load_vlm_checkpoint,
    pad_batch,
    slices_to_inputs,
    vlm_checkpoint,
)

from .volume import SliceSequence

INSTRUCTION = (
    "Find the target of the query. Think in <think></think>, then answer in <answer></answer> with the key slice "
    'and its boxes as {"slice": k, "bbox_2d_list": [[x1,y1,x2,y2]]}. Query: '
)


def policy_corpus() -> list[str]:
    """Texts for the tiny BPE: the project's corpus plus the queries, think templates and answers."""
    from lib.data.queries import ATTRIBUTE_PHRASES, FUNCTION_PHRASES, LESION_NOUNS, PARAPHRASES
    from lib.networks.vlm.tokenizer import project_corpus

    from .targets import think_text

    texts = project_corpus() + [INSTRUCTION]
    for table in (FUNCTION_PHRASES, PARAPHRASES, ATTRIBUTE_PHRASES, LESION_NOUNS):
        texts += [p for v in table.values() for p in v]
    texts += [think_text(n.replace("_", " "), k, b) for n in FUNCTION_PHRASES for k in (1, 12) for b in (1, 2)]
    texts += ['{"slice":12,"bbox_2d_list":[[10,23,45,60],[3,4,5,6]]}'] * 20
    return texts


def slice_tokens(n_slices: int) -> tuple[str, ...]:
    return tuple(f"<slice {k}>" for k in range(1, n_slices + 1))


@dataclass
class Prompt:
    enc: dict  # encode_dialogue output with add_generation_prompt (labels dropped)
    vis: object  # VisionInputs


class MedVolPolicy:
    def __init__(self, model, tokenizer, processor, vlm_cfg: VLMConfig, n_slices: int):
        self.model, self.tokenizer, self.processor, self.vlm_cfg, self.n_slices = model, tokenizer, processor, vlm_cfg, int(n_slices)

    # ------------------------------------------------------------------ build / save
    @classmethod
    def build(cls, vlm_cfg: VLMConfig, n_slices: int, corpus: Optional[Sequence[str]] = None) -> "MedVolPolicy":
        """A fresh policy (tiny VLM from config, or the local folder of ``vlm_cfg.vlm_path``), LoRA applied."""
        from dataclasses import replace

        cfg = replace(vlm_cfg, task_tokens=tuple(vlm_cfg.task_tokens) + slice_tokens(n_slices))
        model, tokenizer, processor = build_vlm(cfg, corpus=corpus if corpus is not None else policy_corpus())
        return cls(apply_lora(model, cfg), tokenizer, processor, cfg, n_slices)

    def checkpoint(self) -> dict:
        return {"vlm": vlm_checkpoint(self.model, self.tokenizer, self.vlm_cfg), "n_slices": self.n_slices}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "MedVolPolicy":
        model, tokenizer, processor, cfg = load_vlm_checkpoint(ckpt["vlm"])
        return cls(model, tokenizer, processor, cfg, ckpt["n_slices"])

    @property
    def size(self) -> int:
        """Pixel size of a slice as the VLM sees it (boxes are in these pixels)."""
        return int(self.vlm_cfg.image_size)

    # ------------------------------------------------------------------ prompts
    def vision(self, seq: SliceSequence):
        if seq.n_slices != self.n_slices or seq.size != self.size:
            raise ValueError(f"the policy reads {self.n_slices} slices of {self.size} px, got {seq.n_slices} of {seq.size}")
        return slices_to_inputs([s.T for s in seq.image], self.vlm_cfg, self.processor, hu=False)

    def _turn(self, vis, query: str, answer: Optional[str] = None) -> Turn:
        return Turn(INSTRUCTION + query, list(vis.n_image_tokens), answer, image_prefixes=list(slice_tokens(self.n_slices)))

    def prompt(self, seq: SliceSequence, query: str, vis=None) -> Prompt:
        vis = vis if vis is not None else self.vision(seq)
        enc = encode_dialogue(self.tokenizer, [self._turn(vis, query)], add_generation_prompt=True)
        enc.pop("labels", None)
        return Prompt(enc, vis)

    # ------------------------------------------------------------------ SFT
    def sft_loss(self, batch: Sequence[tuple[SliceSequence, str, str]], vis_cache: Optional[dict] = None) -> torch.Tensor:
        """Answer-only cross-entropy of (sequence, query, target response) triples."""
        encs, viss = [], []
        for seq, query, response in batch:
            vis = vis_cache.get(id(seq)) if vis_cache is not None else None
            if vis is None:
                vis = self.vision(seq)
                if vis_cache is not None:
                    vis_cache[id(seq)] = vis
            encs.append(encode_dialogue(self.tokenizer, [self._turn(vis, query, response)]))
            viss.append(vis)
        enc = pad_batch(encs, self.tokenizer.pad_token_id)
        vis = concat_inputs(viss)
        return self.model(**enc, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw).loss

    # ------------------------------------------------------------------ sampling and log-probabilities
    @torch.no_grad()
    def generate(self, prompt: Prompt, n: int = 1, do_sample: bool = False, temperature: float = 1.0, max_new_tokens: int = 96) -> torch.Tensor:
        """(n, L) response token ids (right-padded with pad; the prompt removed)."""
        enc, vis = prompt.enc, prompt.vis
        batch = {k: v.repeat(n, 1) for k, v in enc.items()}
        many = concat_inputs([vis] * n)
        kw = dict(do_sample=do_sample, max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id)
        if do_sample:
            kw.update(temperature=temperature, top_k=0, top_p=1.0)
        kw["suppress_tokens"] = self.suppressed_ids()
        was = self.model.training
        self.model.eval()
        out = self.model.generate(**batch, pixel_values=many.pixel_values, image_grid_thw=many.image_grid_thw, **kw)
        self.model.train(was)
        return out[:, enc["input_ids"].shape[1] :]

    def suppressed_ids(self) -> list[int]:
        """Vision and chat-structure tokens a response must never contain (an image pad in a
        response would break the next forward's image-feature count)."""
        from lib.networks.vlm.tokenizer import IM_START, IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_PAD, VISION_START

        if getattr(self, "_suppressed", None) is None:  # a real Qwen vocabulary is large: look it up once
            ids = self.tokenizer.convert_tokens_to_ids([IM_START, IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_PAD, VISION_START])
            unk = self.tokenizer.unk_token_id
            self._suppressed = [int(i) for i in ids if i is not None and i != unk]
        return list(self._suppressed)

    def decode(self, ids: torch.Tensor) -> list[str]:
        return [self.tokenizer.decode(row, skip_special_tokens=True) for row in ids]

    def response_mask(self, ids: torch.Tensor) -> torch.Tensor:
        """1 on response tokens up to and including the first eos (pad after it is not scored)."""
        eos = self.tokenizer.eos_token_id
        is_eos = (ids == eos).int()
        after = (torch.cumsum(is_eos, 1) - is_eos) > 0
        return (~after).float()

    def token_logprobs(self, prompt: Prompt, ids: torch.Tensor, model=None, temperature: float = 1.0) -> torch.Tensor:
        """(G, L) log π(o_t | p, o_<t) of the response tokens ``ids`` (G, L), under the distribution
        :meth:`generate` samples from: logits / ``temperature``, with the suppressed tokens removed.
        So π_old of eq. 3 is exactly the sampling policy and the ratio starts at 1."""
        model = model or self.model
        G = ids.shape[0]
        p = {k: v.repeat(G, 1) for k, v in prompt.enc.items()}
        Lp = p["input_ids"].shape[1]
        input_ids = torch.cat([p["input_ids"], ids], 1)
        attention = torch.cat([p["attention_mask"], torch.ones_like(ids)], 1)
        mm = torch.cat([p["mm_token_type_ids"], torch.zeros_like(ids)], 1)
        many = concat_inputs([prompt.vis] * G)
        logits = model(input_ids=input_ids, attention_mask=attention, mm_token_type_ids=mm, pixel_values=many.pixel_values, image_grid_thw=many.image_grid_thw).logits
        logits = logits[:, Lp - 1 : -1].float() / float(temperature)
        sup = self.suppressed_ids()
        if sup:  # finite, so a (never sampled) suppressed id cannot turn a ratio into nan
            logits[..., sup] = -1e9
        return torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]

    def confidence(self, prompt: Prompt, ids: torch.Tensor) -> float:
        """Rewards-free confidence of one response: exp(mean token log-probability)."""
        with torch.no_grad():
            lp = self.token_logprobs(prompt, ids[:1])
        m = self.response_mask(ids[:1])
        return float(torch.exp((lp * m).sum() / m.sum().clamp(min=1)))
