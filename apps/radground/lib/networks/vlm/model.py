"""Build, LoRA-wrap, save and restore the shared Qwen2.5-VL-class model.

``build_vlm(cfg)`` returns ``(model, tokenizer, image_processor)``: a real
``Qwen2_5_VLForConditionalGeneration`` either loaded from ``cfg.vlm_path`` (local files only) or
built from a tiny ``Qwen2_5_VLConfig`` whose vocabulary is the offline BPE of ``tokenizer.py``.
Task tokens are added to the tokenizer and the embedding table is resized to match.
Checkpoints are plain dicts (``torch.save``-able): the tiny model travels whole (config, tokenizer
JSON, weights); a local-folder model travels as its path plus the trainable weights (LoRA and the
embedding rows of the added tokens), so a 3B base is never copied.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import torch
from transformers import PreTrainedTokenizerBase, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from .config import VLMConfig
from .images import make_image_processor
from .tokenizer import (
    IM_END,
    IMAGE_PAD,
    PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    add_tokens,
    load_local_tokenizer,
    project_corpus,
    tokenizer_from_str,
    tokenizer_to_str,
    train_tokenizer,
)


def tiny_model_config(cfg: VLMConfig, tokenizer: PreTrainedTokenizerBase) -> Qwen2_5_VLConfig:
    """A ``Qwen2_5_VLConfig`` of ``cfg``'s sizes whose special ids are the tokenizer's."""
    ids = tokenizer.convert_tokens_to_ids
    pad, eos = ids(PAD), ids(IM_END)
    text = dict(cfg.text, vocab_size=len(tokenizer), bos_token_id=pad, eos_token_id=eos, pad_token_id=pad, tie_word_embeddings=True)
    vision = dict(
        cfg.vision,
        patch_size=cfg.patch_size,
        spatial_merge_size=cfg.merge_size,
        temporal_patch_size=cfg.temporal_patch_size,
        in_channels=3,
        out_hidden_size=cfg.text["hidden_size"],
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids(IMAGE_PAD),
        video_token_id=ids(VIDEO_PAD),
        vision_start_token_id=ids(VISION_START),
        vision_end_token_id=ids(VISION_END),
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=True,
    )


def build_vlm(cfg: VLMConfig, corpus: Optional[Iterable[str]] = None):
    """``(model, tokenizer, image_processor)`` without adapters (see module docstring).

    ``corpus``: texts for the tiny tokenizer's BPE (default :func:`project_corpus`); unused with ``vlm_path``.
    """
    processor = make_image_processor(cfg)
    if cfg.vlm_path:
        tokenizer = load_local_tokenizer(cfg.vlm_path, cfg.task_tokens)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(cfg.vlm_path, local_files_only=True, torch_dtype=torch.float32)
        _fit_embeddings(model, tokenizer)
        return model, tokenizer, processor
    texts = list(corpus) if corpus is not None else project_corpus()
    tokenizer = train_tokenizer(texts, cfg.vocab_size, cfg.task_tokens)
    model = Qwen2_5_VLForConditionalGeneration(tiny_model_config(cfg, tokenizer))
    return model, tokenizer, processor


def _fit_embeddings(model, tokenizer) -> None:
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))


def add_task_tokens(model, tokenizer: PreTrainedTokenizerBase, tokens: Sequence[str]) -> list[int]:
    """Add ``tokens`` (e.g. ``[seg]``) to an already built model + tokenizer; returns their ids.

    Call before :func:`apply_lora` (the embedding table is resized). New rows start as the mean
    embedding, the usual choice so that the new tokens do not dominate the first outputs.
    """
    before = model.get_input_embeddings().weight.shape[0]
    ids = add_tokens(tokenizer, tokens)
    _fit_embeddings(model, tokenizer)
    emb = model.get_input_embeddings().weight
    if emb.shape[0] > before:
        with torch.no_grad():
            emb[before:] = emb[:before].mean(0, keepdim=True)
    return ids


def apply_lora(model, cfg: VLMConfig):
    """LoRA (r, alpha, dropout, target modules of ``cfg``) on the language model via peft.

    Targets are matched inside the language model only (Qwen2.5-VL's vision attention is named
    ``qkv``/``proj``, so ``q_proj``... hit the LM). With ``cfg.train_base`` the base weights stay
    trainable (tiny models built here); otherwise only the adapters and the embedding rows train.
    """
    from peft import LoraConfig, get_peft_model

    if not cfg.use_lora:
        return model
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_targets))
    wrapped = get_peft_model(model, lora)
    if cfg.train_base:
        for p in wrapped.base_model.model.parameters():
            p.requires_grad_(True)
    else:
        wrapped.base_model.model.get_input_embeddings().weight.requires_grad_(True)
    return wrapped


def base_model(model):
    """The ``Qwen2_5_VLForConditionalGeneration`` inside a (possibly peft-wrapped) model."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def vlm_checkpoint(model, tokenizer: PreTrainedTokenizerBase, cfg: VLMConfig) -> dict[str, Any]:
    """A plain dict to ``torch.save``: see module docstring for what travels."""
    state = model.state_dict()
    if cfg.vlm_path:
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        state = {k: v for k, v in state.items() if k in names}
    return {
        "vlm_config": cfg.to_dict(),
        "model_config": None if cfg.vlm_path else base_model(model).config.to_dict(),
        "tokenizer": None if cfg.vlm_path else tokenizer_to_str(tokenizer),
        "added_tokens": list(cfg.task_tokens),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state.items()},
    }


def load_vlm_checkpoint(ckpt: dict[str, Any], cfg_overrides: Optional[dict[str, Any]] = None):
    """Inverse of :func:`vlm_checkpoint`: ``(model, tokenizer, image_processor, cfg)`` with LoRA applied as saved."""
    cfg = VLMConfig.from_dict({**ckpt["vlm_config"], **(cfg_overrides or {})})
    if cfg.vlm_path:
        model, tokenizer, processor = build_vlm(cfg)
        model = apply_lora(model, cfg)
        missing = model.load_state_dict(ckpt["state_dict"], strict=False)
        if missing.unexpected_keys:
            raise ValueError(f"checkpoint does not fit the model in {cfg.vlm_path}: {missing.unexpected_keys[:5]}")
        return model, tokenizer, processor, cfg
    tokenizer = tokenizer_from_str(ckpt["tokenizer"], cfg.task_tokens)
    model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig.from_dict(ckpt["model_config"]))
    model = apply_lora(model, cfg)
    model.load_state_dict(ckpt["state_dict"])
    return model, tokenizer, make_image_processor(cfg), cfg
