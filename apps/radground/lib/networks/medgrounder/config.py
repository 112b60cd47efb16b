"""Sizes and loss weights of MedGrounder (003 §3.2), one dataclass for the ``tiny`` and ``paper`` variants.

The paper's matching cost (eq. 2) and losses (eqs. 3-4) weigh groundability, L1 and GIoU terms
with lambda_g, lambda_L1, lambda_GIoU. Their numbers did not survive in our copy of the paper
(the equation block is blank); MedGrounder "builds upon MDETR", whose defaults are used for both
the matching cost and the loss: lambda_g = 1, lambda_L1 = 5, lambda_GIoU = 2 (MDETR / DETR
``set_cost_class``/``ce_loss_coef`` = 1, ``bbox`` = 5, ``giou`` = 2).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional


@dataclass
class MedGrounderConfig:
    spatial_dims: int = 3  # 3: CT volumes, 2: radiographs
    in_channels: int = 2  # one per HU window (CT) or 1 (radiograph)
    image_size: int = 48  # the input is resized (longest side) and padded to a cube / square of this size
    # image encoder: MONAI ResNet (paper: ResNet-101 = bottleneck, layers (3, 4, 23, 3))
    resnet_block: str = "basic"
    resnet_layers: tuple = (1, 1, 1)
    resnet_channels: tuple = (8, 16, 32)
    resnet_norm: Any = ("instance", {"affine": True})
    # text: frozen token encoder (lib.networks.text_encoder backends) + trainable projection
    text_encoder: dict = field(default_factory=lambda: {"backend": "minilm"})
    max_text_tokens: int = 48
    # cross-modal transformer (MDETR): d_model, heads, encoder / decoder layers, FFN width, N queries
    d_model: int = 64
    n_heads: int = 4
    enc_layers: int = 2
    dec_layers: int = 2
    dim_feedforward: int = 128
    dropout: float = 0.0
    num_queries: int = 8
    aux_loss: bool = True  # DETR/MDETR supervise every decoder layer's output
    # eq. 2 matching cost and eqs. 3-4 loss weights (see module docstring)
    cost_groundability: float = 1.0
    cost_l1: float = 5.0
    cost_giou: float = 2.0
    loss_groundability: float = 1.0
    loss_l1: float = 5.0
    loss_giou: float = 2.0
    # weight of the unmatched ("not groundable") queries in the groundability BCE: DETR / MDETR's
    # ``eos_coef`` = 0.1. Without it the BCE is dominated by the N - M unmatched queries of every
    # sentence (and by zero-box sentences), which pulls every confidence down (see losses.py)
    loss_noobject_weight: float = 0.1
    # post-processing (§5.3.2): confidence threshold (paper 0.8, re-chosen on validation) + WBF IoU 0.1
    threshold: float = 0.8
    wbf_iou: float = 0.1

    @property
    def box_dim(self) -> int:
        return 2 * self.spatial_dims

    @classmethod
    def tiny(cls, **overrides) -> "MedGrounderConfig":
        return cls(**overrides)

    @classmethod
    def paper(cls, **overrides) -> "MedGrounderConfig":
        """ResNet-101, d_model 256, 6 + 6 layers, 8 heads (MDETR); N = 20 queries; image 640 (2D) / 192 (3D)."""
        base = dict(
            resnet_block="bottleneck",
            resnet_layers=(3, 4, 23, 3),
            resnet_channels=(64, 128, 256, 512),
            resnet_norm="batch",
            d_model=256,
            n_heads=8,
            enc_layers=6,
            dec_layers=6,
            dim_feedforward=2048,
            dropout=0.1,
            num_queries=20,
            max_text_tokens=128,
        )
        base["image_size"] = 640 if overrides.get("spatial_dims", 3) == 2 else 192
        base.update(overrides)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Optional[Mapping[str, Any]]) -> "MedGrounderConfig":
        d = dict(d or {})
        for k in ("resnet_layers", "resnet_channels"):
            if k in d:
                d[k] = tuple(d[k])
        if isinstance(d.get("resnet_norm"), list):
            d["resnet_norm"] = tuple(d["resnet_norm"])
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})
