"""Sizes of Reg2RG (004): the volume encoder, the adapter, the geometry encoder and the language model.

``tiny`` trains on a CPU in minutes (small ViTs, a 4-layer LLaMA built from config and trained on
the synthetic reports by ``scripts/train_reg2rg.py lm``); ``paper`` is 004 §4.2: 256x256x64 inputs,
ViT3D patch 32x32x4 with 768-d tokens, a Perceiver adapter to 32 visual tokens, a 3-layer mask ViT
pooled to one token, LLaMA2-7B (a local folder, ``--conf reg2rg_llm DIR``) with LoRA r=8, alpha=32.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional


#: LLaMA2-7B's shape (004 §4.2), for sizing the paper model without its weights (tests build it on
#: the meta device); a real run loads the weights from a local folder (``--conf reg2rg_llm DIR``).
LLAMA2_7B_SHAPE: dict[str, Any] = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 4096,
}


@dataclass
class Reg2RGConfig:
    # Texture: cropped region volume (and the whole volume, for the global features), 004 eq. 3 and 7.
    image_size: tuple[int, int, int] = (48, 48, 24)
    patch_size: tuple[int, int, int] = (8, 8, 6)
    #: HU of the texture crop outside the region's mask (mask ⊙ CT). -1024 (air) hides what the anatomy
    #: task leaves out of an air-filled region: a lung mass or consolidation is a hole in the lung mask,
    #: and -1024 there is almost lung air (-850). -400 is 0 on the normalised scale (what multiplying the
    #: normalised volume by the mask gives), so such holes stand out from lung and from soft tissue.
    texture_outside_hu: float = -1024.0
    #: Give each lung back what it encloses before masking, whatever label the anatomy task gave those
    #: voxels (a departure from eq. 3's raw mask, see ``lib.data.region_reports.fill_region_holes``): the
    #: anatomy task leaves dense lung findings out of the lung mask, so the raw mask ⊙ CT does not hold them.
    fill_region_holes: bool = False
    #: One more token per region: the texture crop's intensity histogram (``visual.IntensityHistogram``;
    #: not in 004, which has a pretrained texture encoder). With ``use_texture`` only. On in ``tiny()``
    #: (its encoders train from scratch), off in ``paper()``.
    histogram_token: bool = False
    histogram_bins: int = 32
    vis_dim: int = 64
    vis_layers: int = 3
    vis_heads: int = 4
    vis_mlp: int = 128
    # Adapter: Perceiver resampler to ``n_visual_tokens`` latents (RadFM's adapter, 32 tokens in 004).
    n_visual_tokens: int = 32
    perceiver_layers: int = 1
    perceiver_heads: int = 4
    # Geometry: the uncropped region mask -> a 3-layer ViT -> mean pooled -> linear (004 eq. 4).
    mask_size: tuple[int, int, int] = (32, 32, 16)
    mask_patch_size: tuple[int, int, int] = (8, 8, 8)
    geo_dim: int = 32
    geo_layers: int = 3
    geo_heads: int = 4
    geo_mlp: int = 64
    # Which visual features go into the prompt (Table 5): TXT, GEO, GLB. "GLB only" = global features only.
    use_texture: bool = True
    use_geometry: bool = True
    use_global: bool = True
    max_regions: int = 10
    #: True: every region in one prompt, all region reports in one answer (004). False: one prompt per
    #: region (global + that region), one region report each - the tiny variant, see ``tiny()``.
    joint_regions: bool = True
    # Language model: built from ``lm_config`` (tiny) or loaded from a local folder ``lm_path``.
    lm_path: Optional[str] = None
    lm_arch: str = "llama"
    lm_config: dict[str, Any] = field(
        default_factory=lambda: {
            "hidden_size": 128,
            "intermediate_size": 384,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "max_position_embeddings": 1024,
        }
    )
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    #: Tiny LMs are trained here, so the base model may be fine-tuned too; a 7B model is LoRA only.
    train_lm_base: bool = False

    @property
    def uses_local(self) -> bool:
        return self.use_texture or self.use_geometry

    @property
    def region_tokens(self) -> int:
        """Visual embeddings per ``<region_i>``: 32 texture tokens + 1 geometry token (004 eq. 5)."""
        return (self.n_visual_tokens + int(self.histogram_token) if self.use_texture else 0) + (1 if self.use_geometry else 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Reg2RGConfig":
        known = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**kw)

    @classmethod
    def tiny(cls, **kw) -> "Reg2RGConfig":
        """CPU sizes, one prompt per region: the small LM trained here does not learn to look region i
        up among ten ``<region_*>`` blocks (area names stayed at chance, both with LoRA and with the
        LM fine-tuned, also when pre-trained on the same prompt with area names written out), the
        in-context referencing 004 §4.4.4 credits to a 7B decoder."""
        return cls(**{"joint_regions": False, "histogram_token": True, **kw})

    @classmethod
    def paper(cls, **kw) -> "Reg2RGConfig":
        base = dict(
            image_size=(256, 256, 64),
            patch_size=(32, 32, 4),
            vis_dim=768,
            vis_layers=12,
            vis_heads=12,
            vis_mlp=3072,
            perceiver_layers=6,
            perceiver_heads=8,
            mask_size=(256, 256, 64),
            mask_patch_size=(32, 32, 16),
            geo_dim=256,
            geo_layers=3,
            geo_heads=8,
            geo_mlp=512,
            lora_r=8,
            lora_alpha=32,
            lora_dropout=0.1,
            lora_targets=("q_proj", "v_proj"),
        )
        base.update(kw)
        return cls(**base)
