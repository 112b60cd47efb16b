"""The language decoder of Reg2RG (004 §3.3): a transformers causal LM wrapped with peft LoRA.

Default: a small LLaMA built from config (its weights are trained on the synthetic reports by
``scripts/train_reg2rg_lm.py``, stored inside the Reg2RG checkpoint); by config any local
LLaMA/Qwen folder (``from_pretrained(local_files_only=True)``; nothing is downloaded). LoRA as in
004 §4.2 (r=8, alpha=32, dropout 0.1; q/v projections on the 7B model).
"""
from __future__ import annotations

from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

from .config import Reg2RGConfig

_ARCHS = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}


def build_base_lm(cfg: Reg2RGConfig, vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> PreTrainedModel:
    """The causal LM without adapters: from ``cfg.lm_path`` if set, else built from ``cfg.lm_config``."""
    if cfg.lm_path:
        model = AutoModelForCausalLM.from_pretrained(cfg.lm_path, local_files_only=True)
        if model.get_input_embeddings().weight.shape[0] < vocab_size:
            model.resize_token_embeddings(vocab_size)
        return model
    config_cls, model_cls = _ARCHS[cfg.lm_arch]
    config = config_cls(
        vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id, tie_word_embeddings=True, **dict(cfg.lm_config)
    )
    return model_cls(config)


def with_lora(base: PreTrainedModel, cfg: Reg2RGConfig):
    """Wrap ``base`` with LoRA adapters; the base stays frozen unless ``cfg.train_lm_base``."""
    lora = LoraConfig(
        task_type="CAUSAL_LM", r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=list(cfg.lora_targets)
    )
    model = get_peft_model(base, lora)
    if cfg.train_lm_base:
        for p in model.base_model.model.parameters():
            p.requires_grad_(True)
    return model
