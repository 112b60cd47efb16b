"""Writing the region reports of one study with a Reg2RG model (greedy), read back region by region.

One place for the prompting the infer task and the trainer's validation share: the joint prompt
of 004 (every region in one prompt, one answer, prefixes parsed back), or one prompt per region
(``joint_regions`` off, the tiny variant: ``<region_0>`` is that region). The "GLB only" ablation
has no region tokens and writes every region in canonical order in one answer.
"""
from __future__ import annotations

from typing import Sequence

import torch

from lib.data.region_reports import RegionInputs, align_to_regions, build_prompt, encode_example, parse_generated

from .model import Reg2RG


@torch.no_grad()
def write_region_reports(network: Reg2RG, inputs: RegionInputs, given: Sequence[str], max_new_tokens: int) -> tuple[list[dict], str]:
    """(one record per region in ``given`` - see :func:`align_to_regions` -, the raw generated text).

    ``inputs`` holds the regions' crops and masks in ``given`` order (ignored by the GLB-only model).
    """
    cfg = network.config
    dev = next(network.parameters()).device
    tok = network.tokenizer
    crops = inputs.crops.to(dev, torch.float32) if cfg.uses_local else None
    masks = inputs.masks.to(dev, torch.float32) if cfg.uses_local else None
    glb, reg = network.encode(inputs.global_volume.to(dev, torch.float32), crops, masks)
    if cfg.joint_regions or not cfg.uses_local:
        prompt_ids, _ = encode_example(tok, build_prompt(len(given), use_global=cfg.use_global, use_local=cfg.uses_local))
        text = tok.decode(network.generate_from(prompt_ids.to(dev), glb, reg, max_new_tokens=max_new_tokens), skip_special_tokens=True)
        return align_to_regions(parse_generated(text), list(given)), text
    prompt_ids, _ = encode_example(tok, build_prompt(1, use_global=cfg.use_global))
    records, texts = [], []
    for j, name in enumerate(given):
        t = tok.decode(network.generate_from(prompt_ids.to(dev), glb, reg[j : j + 1], max_new_tokens=max_new_tokens), skip_special_tokens=True)
        records.append(dict(align_to_regions(parse_generated(t), [name])[0], index=j))
        texts.append(t)
    return records, " ".join(texts)
