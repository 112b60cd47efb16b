"""Sizes and loss weights of Seg-det-explain (001).

``tiny``: the shared tiny Qwen2.5-VL (its small LM trained fully, plus LoRA r=8/alpha=16/dropout
0.05 on the attention projections) and a SAM built from a tiny ``SamConfig`` (2-layer ViT on 128 px
slices, 64-d prompt space), CPU-trainable in minutes. ``paper`` is 001 §5.1: Qwen2.5-VL-3B from a
local folder with LoRA only, SAM ViT-H on 1024 px inputs (256-d prompt space; weights from a local
``sam_path`` when given), 2048 -> 256 projection, AdamW 3e-4, betas (0.9, 0.95), no weight decay,
gradient accumulation 10, all perception losses weighted equally.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Optional

from lib.data.slice_grounding import ROUTING_TOKENS
from lib.networks.vlm import VLMConfig


@dataclass
class SegDetExplainConfig:
    vlm: dict[str, Any] = field(default_factory=lambda: VLMConfig.tiny(task_tokens=ROUTING_TOKENS).to_dict())
    # SAM-style visual module (transformers SamModel built from a SamConfig, or loaded from sam_path).
    sam_path: Optional[str] = None
    image_size: int = 128
    sam_patch: int = 8
    sam_hidden: int = 64
    sam_layers: int = 2
    sam_heads: int = 2
    sam_window: int = 4
    sam_global_attn: tuple[int, ...] = (1,)
    prompt_dim: int = 64  # SAM's prompt/embedding space (256 in ViT-H SAM)
    decoder_mlp: int = 128
    decoder_heads: int = 4
    # Detection branch: Q learnable box queries, a small transformer decoder, box + objectness FC heads.
    num_box_queries: int = 8
    det_layers: int = 1
    # Loss weights (eq. 10; 001 §5.1: all perception terms weighted equally).
    lambda_lm: float = 1.0
    lambda_seg: float = 1.0
    lambda_det: float = 1.0
    w_dice: float = 1.0
    w_bce: float = 1.0
    w_l1: float = 1.0
    w_giou: float = 1.0
    w_obj: float = 1.0
    # Hungarian cost (objectness, L1, GIoU), DETR's weights.
    cost_obj: float = 1.0
    cost_l1: float = 5.0
    cost_giou: float = 2.0
    # Closer look (§3.2): ROI = mask box grown by ``closer_margin`` per side, at least ``closer_min`` of the image.
    closer_margin: float = 0.25
    closer_min: float = 0.2
    mask_threshold: float = 0.5
    objectness_threshold: float = 0.5
    max_new_tokens: int = 96
    # Optimiser (001 §5.1).
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    grad_accum: int = 1

    @property
    def vlm_config(self) -> VLMConfig:
        return VLMConfig.from_dict(self.vlm)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SegDetExplainConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**kw)

    @classmethod
    def tiny(cls, **kw) -> "SegDetExplainConfig":
        return cls(**kw)

    @classmethod
    def paper(cls, vlm_path: Optional[str] = None, sam_path: Optional[str] = None, **kw) -> "SegDetExplainConfig":
        base = dict(
            vlm=VLMConfig.paper(vlm_path=vlm_path, task_tokens=ROUTING_TOKENS).to_dict(),
            sam_path=sam_path,
            image_size=1024,
            sam_patch=16,
            sam_hidden=1280,
            sam_layers=32,
            sam_heads=16,
            sam_window=14,
            sam_global_attn=(7, 15, 23, 31),
            prompt_dim=256,
            decoder_mlp=2048,
            decoder_heads=8,
            num_box_queries=16,
            det_layers=2,
            grad_accum=10,
            max_new_tokens=160,
        )
        base.update(kw)
        return cls(**base)
