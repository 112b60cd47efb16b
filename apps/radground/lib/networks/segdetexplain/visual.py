"""The visual module V = E o {D (+) S} (001 §3): SAM's image encoder and mask decoder + a detection branch.

SAM is transformers' ``SamModel`` (built from a ``SamConfig`` of the configured sizes, or loaded from
a local ``sam_path``); the routing-token embedding enters its mask decoder as the one sparse prompt
token, with SAM's "no mask" dense embedding, as LISA does. The detection branch (eq. 5) is written
here because SAM has none: Q learnable box queries, conditioned by adding the projected ``[det]``
embedding, cross-attend to the same image embedding through a small ``torch.nn.TransformerDecoder``;
two small fully-connected heads give a box (normalised centre-size, sigmoid) and an objectness logit
per query (001 §5.1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SamConfig, SamModel

from .config import SegDetExplainConfig


def build_sam(cfg: SegDetExplainConfig) -> SamModel:
    if cfg.sam_path:
        return SamModel.from_pretrained(cfg.sam_path, local_files_only=True)
    d = cfg.prompt_dim
    config = SamConfig(
        vision_config=dict(
            hidden_size=cfg.sam_hidden,
            output_channels=d,
            num_hidden_layers=cfg.sam_layers,
            num_attention_heads=cfg.sam_heads,
            image_size=cfg.image_size,
            patch_size=cfg.sam_patch,
            window_size=cfg.sam_window,
            global_attn_indexes=list(cfg.sam_global_attn),
            num_pos_feats=d // 2,
            initializer_range=0.02,
        ),
        prompt_encoder_config=dict(hidden_size=d, image_size=cfg.image_size, patch_size=cfg.sam_patch),
        mask_decoder_config=dict(hidden_size=d, mlp_dim=cfg.decoder_mlp, num_attention_heads=cfg.decoder_heads, iou_head_hidden_dim=d),
    )
    return SamModel(config)


class DetectionBranch(nn.Module):
    """Eq. 5: ``{(b_k, s_k)}_{k=1..Q} = D(z; e[det], Q_box)``."""

    def __init__(self, dim: int, num_queries: int, layers: int, heads: int):
        super().__init__()
        self.queries = nn.Embedding(num_queries, dim)
        layer = nn.TransformerDecoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.box_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 4))
        self.objectness_head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def forward(self, z: torch.Tensor, pos: torch.Tensor, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, d, h, w), pos (1, d, h, w), prompt (B, d) -> boxes (B, Q, 4) cxcywh in [0, 1], logits (B, Q)."""
        memory = (z + pos).flatten(2).transpose(1, 2)
        tgt = self.queries.weight[None] + prompt[:, None]
        h = self.decoder(tgt, memory)
        return self.box_head(h).sigmoid(), self.objectness_head(h)[..., 0]


class VisualModule(nn.Module):
    def __init__(self, cfg: SegDetExplainConfig):
        super().__init__()
        self.sam = build_sam(cfg)
        self.size = int(self.sam.config.vision_config.image_size)
        d = int(self.sam.config.mask_decoder_config.hidden_size)
        self.detector = DetectionBranch(d, cfg.num_box_queries, cfg.det_layers, cfg.decoder_heads)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """E: images (B, H, W) in [0, 1] (resized here to SAM's input size) -> z (B, d, h, w)."""
        x = images[:, None].float()
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = (x - 0.5) / 0.5
        return self.sam.vision_encoder(x.expand(-1, 3, -1, -1))[0]

    def positional(self) -> torch.Tensor:
        return self.sam.get_image_wide_positional_embeddings()

    def segment(self, z: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """S (eq. 4/6): mask logits (B, size, size) from z and one prompt vector (B, d) per image."""
        b = z.shape[0]
        dense = self.sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(b, -1, z.shape[-2], z.shape[-1])
        pos = self.positional().expand(b, -1, -1, -1)
        masks, _ = self.sam.mask_decoder(
            image_embeddings=z, image_positional_embeddings=pos, sparse_prompt_embeddings=prompt[:, None, None], dense_prompt_embeddings=dense, multimask_output=False
        )
        return F.interpolate(masks[:, 0], size=(self.size, self.size), mode="bilinear", align_corners=False)[:, 0]

    def detect(self, z: torch.Tensor, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.detector(z, self.positional(), prompt)
