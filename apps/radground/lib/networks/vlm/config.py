"""Sizes of the shared vision-language model (a Qwen2.5-VL-class LVLM).

``tiny`` is built from config here (2-layer text model, 2-block vision tower, 64x64 slices -> 16
visual tokens) and trains on a CPU in minutes; ``paper`` is Qwen2.5-VL-3B-Instruct from a local
folder (``vlm_path``; nothing is downloaded) with LoRA r=8, alpha=16, dropout 0.05 on the attention
projections (001 §5.1).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Optional


@dataclass
class VLMConfig:
    #: A local Qwen2.5-VL folder (config.json, weights, tokenizer, preprocessor_config.json); None = tiny from config.
    vlm_path: Optional[str] = None
    #: Slices are resized to image_size x image_size before patching (a multiple of patch_size * merge_size).
    image_size: int = 64
    patch_size: int = 8
    merge_size: int = 2
    temporal_patch_size: int = 2
    #: HU window applied by :func:`lib.networks.vlm.images.window_hu` when callers pass raw HU.
    window_level: float = 40.0
    window_width: float = 400.0
    # Tiny text model and vision tower (ignored with vlm_path).
    vocab_size: int = 1024
    text: dict[str, Any] = field(
        default_factory=lambda: {
            "hidden_size": 96,
            "intermediate_size": 192,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            # Qwen2.5-VL's 3-D rotary split (temporal, height, width) of head_dim / 2 = 12.
            "rope_parameters": {"rope_type": "default", "mrope_section": [4, 4, 4], "rope_theta": 10000.0},
        }
    )
    vision: dict[str, Any] = field(
        default_factory=lambda: {"depth": 2, "hidden_size": 48, "intermediate_size": 96, "num_heads": 2, "window_size": 32, "fullatt_block_indexes": [1]}
    )
    #: Extra tokens added to the tokenizer (and embedding table), e.g. ``[seg]``, ``[det]``, ``<slice 3>``.
    task_tokens: tuple[str, ...] = ()
    # LoRA on the language model's attention projections (001 §5.1).
    use_lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    #: A tiny LM built here has no pre-training to protect, so its base weights train too; a 3B model is LoRA only.
    train_base: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VLMConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if k in ("task_tokens", "lora_targets") else v) for k, v in d.items() if k in known}
        return cls(**kw)

    @classmethod
    def tiny(cls, **kw) -> "VLMConfig":
        return cls(**kw)

    @classmethod
    def paper(cls, vlm_path: Optional[str] = None, **kw) -> "VLMConfig":
        """Qwen2.5-VL-3B from ``vlm_path``: 448x448 slices (patch 14, merge 2 -> 256 visual tokens), LoRA only."""
        base = dict(vlm_path=vlm_path, image_size=448, patch_size=14, merge_size=2, train_base=False)
        base.update(kw)
        return cls(**base)
