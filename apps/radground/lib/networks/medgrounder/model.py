"""MedGrounder (003 §3.2): image + sentence -> N scored boxes (zero, one or many survive the threshold).

    image --ResNet--> visual tokens (+ sine positions) --+
                                                        [concat] -> cross-modal encoder -> decoder(N queries)
    sentence --frozen encoder--> tokens --linear------+                                  |-> box FFN (sigmoid, centre-size)
                                                                                         |-> confidence FFN (linear)

Boxes are normalised centre-size ``(cx, cy[, cz], w, h[, d])`` in [0, 1] of the model's padded
input (DETR's parameterisation); :func:`boxes_to_corners` turns them into corner boxes. One image
may be paired with several sentences (a report): ``image_index`` maps each sentence to its image,
so the image encoder runs once per image.
"""
from __future__ import annotations

import copy
from typing import Any, Optional, Sequence

import torch
from torch import nn

from lib.metrics.boxes import to_corner_boxes

from .config import MedGrounderConfig
from .image_encoder import ImageEncoder
from .position import sine_position_encoding
from .text import TokenTextEncoder
from .transformer import CrossModalTransformer


class MLP(nn.Module):
    """DETR's box FFN: ``layers`` linear layers with ReLU between."""

    def __init__(self, d_in: int, hidden: int, d_out: int, layers: int = 3):
        super().__init__()
        dims = [d_in] + [hidden] * (layers - 1) + [d_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def boxes_to_corners(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 2*nd) normalised centre-size -> corner boxes (differentiable; MONAI's box modes)."""
    nd2 = boxes.shape[-1]
    mode = "ccwh" if nd2 == 4 else "cccwhd"
    flat = boxes.reshape(-1, nd2)
    return to_corner_boxes(flat, mode).reshape(boxes.shape)


class MedGrounder(nn.Module):
    def __init__(self, config: MedGrounderConfig, text_encoder: Optional[TokenTextEncoder] = None):
        super().__init__()
        self.config = config
        c = config
        self.image_encoder = ImageEncoder(c)
        # frozen encoder, deliberately not a child module: never in state_dict / optimiser
        text_encoder = text_encoder or TokenTextEncoder(c.text_encoder, c.max_text_tokens)
        self.__dict__["text_encoder"] = text_encoder
        self.text_proj = nn.Linear(text_encoder.dim, c.d_model)  # MDETR's FeatureResizer
        self.text_norm = nn.LayerNorm(c.d_model)
        self.transformer = CrossModalTransformer(c.d_model, c.n_heads, c.enc_layers, c.dec_layers, c.dim_feedforward, c.dropout, c.num_queries)
        self.box_head = MLP(c.d_model, c.d_model, c.box_dim, 3)
        self.conf_head = nn.Linear(c.d_model, 1)  # "confidence FFN (linear projection)"

    def __deepcopy__(self, memo):
        """MONAI Label deep-copies the network per device: share the frozen text encoder (a
        transformer and its tokenizer) instead of duplicating it."""
        enc = self.__dict__["text_encoder"]
        memo[id(enc)] = enc
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    def encode_text(self, sentences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text_encoder.encode(list(sentences))

    def forward(
        self,
        images: torch.Tensor,
        sentences: Optional[Sequence[str]] = None,
        image_index: Optional[Sequence[int]] = None,
        text: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
    ) -> dict[str, Any]:
        """``images`` (B_img, C, *S); ``sentences`` (B) or pre-computed ``text`` = (features, pad mask);
        ``image_index`` (B) the image of each sentence (default: sentence i <-> image i).

        Returns ``pred_logits`` (B, N), ``pred_boxes`` (B, N, 2*nd) normalised centre-size and,
        with ``aux_loss``, ``aux_outputs`` (one dict per earlier decoder layer)."""
        device = images.device
        if text is None:
            if sentences is None:
                raise ValueError("give sentences or pre-computed text features")
            text = self.encode_text(sentences)
        tfeat, tpad = text[0].to(device), text[1].to(device)
        b = tfeat.shape[0]
        idx = torch.as_tensor(list(range(b)) if image_index is None else list(image_index), dtype=torch.long, device=device)
        if idx.numel() != b:
            raise ValueError(f"{b} sentences but {idx.numel()} image indices")
        fmap = self.image_encoder(images)  # (B_img, d, *s)
        grid = tuple(fmap.shape[2:])
        vis = fmap.flatten(2).transpose(1, 2)[idx]  # (B, T_v, d)
        vpos = sine_position_encoding(grid, self.config.d_model, device=device)[None].expand(b, -1, -1)
        txt = self.text_norm(self.text_proj(tfeat))
        src = torch.cat([vis, txt], dim=1)
        pos = torch.cat([vpos, torch.zeros_like(txt)], dim=1)
        pad = torch.cat([torch.zeros(b, vis.shape[1], dtype=torch.bool, device=device), tpad], dim=1)
        states = self.transformer(src, pos, pad)  # (L, B, N, d)
        logits = self.conf_head(states).squeeze(-1)
        boxes = self.box_head(states).sigmoid()
        out: dict[str, Any] = {"pred_logits": logits[-1], "pred_boxes": boxes[-1]}
        if self.config.aux_loss:
            out["aux_outputs"] = [{"pred_logits": lg, "pred_boxes": bx} for lg, bx in zip(logits[:-1], boxes[:-1])]
        return out

