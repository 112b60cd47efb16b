"""Seg-det-explain (001 §3): the LVLM M, the projection of routing tokens, and the visual module V.

* The LVLM (shared ``lib.networks.vlm``: Qwen2.5-VL class + LoRA) answers with appearance text and
  routing tokens ``[seg]`` / ``[det]`` (eq. 1-2) and, in the closer-look round, ``[closer]``.
* Eq. 3: a routing token's embedding is the last-layer hidden state at the position that emits it
  (LISA's convention: the state that decides the token, available during generation too).
* A 2-layer GELU MLP projects it to SAM's prompt space (001 §5.1: 2048 -> 256 there).
* Eq. 4-6: SAM's mask decoder turns ``e[seg]`` (round 1) and ``e[closer]`` (round 2, on the ROI's
  own embedding) into masks; the detection branch turns ``e[det]`` into Q boxes + objectness.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from lib.data.slice_grounding import CLOSER_QUESTION, DET, ROUTING_TOKENS, SEG
from lib.networks.medgrounder.model import boxes_to_corners
from lib.networks.vlm import Turn, apply_lora, base_model, build_vlm, encode_dialogue, load_vlm_checkpoint, slices_to_inputs, token_ids, vlm_checkpoint

from .batching import Batch, canonical_image
from .closer import crop_resize, paste, roi_from_mask
from .config import SegDetExplainConfig
from .losses import SegDetExplainLoss

_GEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids")


def emitting_positions(input_ids: torch.Tensor, token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, positions) of the hidden states that emit ``token_id``: first occurrence per row, minus one."""
    hits = input_ids == token_id
    rows = torch.nonzero(hits.any(1))[:, 0]
    pos = hits[rows].float().argmax(1) - 1
    return rows, pos


class SegDetExplain(nn.Module):
    def __init__(self, cfg: SegDetExplainConfig, vlm, tokenizer, processor):
        super().__init__()
        from .visual import VisualModule

        self.cfg = cfg
        self.vlm = vlm
        self.tokenizer = tokenizer
        self.processor = processor
        self.visual = VisualModule(cfg)
        h = int(base_model(vlm).config.text_config.hidden_size)
        d = int(self.visual.sam.config.mask_decoder_config.hidden_size)
        self.projector = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.Linear(h, d))
        self.seg_id, self.det_id, self.closer_id = token_ids(tokenizer, ROUTING_TOKENS)
        self.loss_fn = SegDetExplainLoss(cfg)

    # ------------------------------------------------------------------ build / save
    @classmethod
    def build(cls, cfg: SegDetExplainConfig, corpus=None) -> "SegDetExplain":
        vcfg = cfg.vlm_config
        vlm, tok, proc = build_vlm(vcfg, corpus=corpus)
        return cls(cfg, apply_lora(vlm, vcfg), tok, proc)

    def checkpoint(self) -> dict[str, Any]:
        perception = {k: v.detach().cpu().clone() for k, v in self.state_dict().items() if not k.startswith("vlm.")}
        return {"config": self.cfg.to_dict(), "vlm": vlm_checkpoint(self.vlm, self.tokenizer, self.cfg.vlm_config), "perception": perception}

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> "SegDetExplain":
        cfg = SegDetExplainConfig.from_dict(ckpt["config"])
        vlm, tok, proc, _ = load_vlm_checkpoint(ckpt["vlm"])
        model = cls(cfg, vlm, tok, proc)
        missing = model.load_state_dict(ckpt["perception"], strict=False)
        bad = [k for k in missing.missing_keys if not k.startswith("vlm.")] + list(missing.unexpected_keys)
        if bad:
            raise ValueError(f"checkpoint does not fit the Seg-det-explain model: {bad[:5]}")
        return model

    # ------------------------------------------------------------------ pieces
    def lm(self, enc: dict[str, torch.Tensor], vis, labels: bool = True):
        kw = {k: enc[k] for k in _GEN_KEYS}
        if labels:
            kw["labels"] = enc["labels"]
        return self.vlm(**kw, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw, output_hidden_states=True)

    def prompts(self, hidden: torch.Tensor, input_ids: torch.Tensor, token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, projected embeddings (n, d)) of the rows that contain ``token_id``."""
        rows, pos = emitting_positions(input_ids, token_id)
        return rows, self.projector(hidden[rows, pos])

    # ------------------------------------------------------------------ training (eq. 7-10)
    def training_loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self.lm(batch.enc, batch.vis)
        hidden, ids = out.hidden_states[-1], batch.enc["input_ids"]
        z = self.visual.encode(torch.cat([batch.images, batch.roi_images]))
        z1, z2 = z[: batch.images.shape[0]], z[batch.images.shape[0] :]
        logits, targets = [], []
        rows, e = self.prompts(hidden, ids, self.seg_id)
        if len(rows):
            logits.append(self.visual.segment(z1[rows], e))
            targets.append(batch.masks[rows])
        rows_c, e_c = self.prompts(hidden, ids, self.closer_id)
        with_roi = [n for n, r in enumerate(batch.rois) if r is not None]
        if len(rows_c):
            if rows_c.tolist() != with_roi:
                raise RuntimeError("closer-look tokens and ROIs do not line up")
            logits.append(self.visual.segment(z2, e_c))
            targets.append(batch.roi_masks)
        seg = self.loss_fn.segmentation(torch.cat(logits), torch.cat(targets)) if logits else None
        rows_d, e_d = self.prompts(hidden, ids, self.det_id)
        det = None
        if len(rows_d):
            boxes, obj = self.visual.detect(z1[rows_d], e_d)
            det = self.loss_fn.detection(boxes, obj, [batch.boxes[int(r)] for r in rows_d])
        return self.loss_fn.total(out.loss, seg, det)

    # ------------------------------------------------------------------ inference (§3.4)
    def _generate(self, turns: Sequence[Turn], vis, force: Sequence[int], max_new_tokens: Optional[int] = None) -> tuple[torch.Tensor, str, list[str], list[str]]:
        """Generate the last turn's answer; returns (full ids with any forced routing tokens, text, emitted, forced)."""
        enc = encode_dialogue(self.tokenizer, turns, add_generation_prompt=True)
        gen_kw = {k: enc[k] for k in _GEN_KEYS}
        seq = self.vlm.generate(
            **gen_kw, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw, max_new_tokens=max_new_tokens or self.cfg.max_new_tokens, do_sample=False,
            eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id,
        )[0]
        new = seq[enc["input_ids"].shape[1] :].tolist()
        if self.tokenizer.eos_token_id in new:
            new = new[: new.index(self.tokenizer.eos_token_id)]
        emitted = [t for t, i in zip(ROUTING_TOKENS, (self.seg_id, self.det_id, self.closer_id)) if i in new]
        forced = []
        for tid in force:
            if tid not in new:
                new.append(tid)
                forced.append(self.tokenizer.convert_ids_to_tokens(tid))
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        ids = torch.cat([enc["input_ids"][0], torch.tensor(new, dtype=torch.long)])[None]
        return ids, text, emitted, forced

    def _hidden(self, ids: torch.Tensor, vis) -> torch.Tensor:
        image_id = int(base_model(self.vlm).config.image_token_id)
        enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": (ids == image_id).long()}
        return self.lm(enc, vis, labels=False).hidden_states[-1]

    @torch.no_grad()
    def predict(
        self, image_hu: np.ndarray, question: str, target: str = "", want: Sequence[str] = (SEG, DET), closer: bool = True, max_new_tokens: Optional[int] = None
    ) -> dict[str, Any]:
        """One slice + one question -> answer text, mask probabilities, boxes (pixels of the input slice).

        ``want``: routing tokens the caller needs; one the model did not emit is appended (reported as
        ``forced``) so a request for a mask always gets one. ``closer``: run the closer-look round.
        """
        self.eval()
        cfg, vcfg = self.cfg, self.cfg.vlm_config
        H, W = image_hu.shape
        img = canonical_image(image_hu, cfg.image_size, vcfg)
        vis1 = slices_to_inputs([img.numpy()], vcfg, self.processor)
        turn1 = Turn(question, vis1.n_image_tokens)
        force = [i for t, i in ((SEG, self.seg_id), (DET, self.det_id)) if t in want]
        ids1, text1, emitted, forced = self._generate([turn1], vis1, force, max_new_tokens)
        hidden = self._hidden(ids1, vis1)
        z1 = self.visual.encode(img[None])
        out: dict[str, Any] = {"text": _clean(text1), "raw_text": text1, "emitted": emitted, "forced": forced, "closer": None}
        answer_ids = _after_last_turn(ids1, self.tokenizer)
        mask_prob = None
        rows, e = self.prompts(hidden, answer_ids, self.seg_id)
        if len(rows):
            mask_prob = self.visual.segment(z1, e)[0].sigmoid()
            out["round1_prob"] = _to_input(mask_prob, H, W)
        rows, e = self.prompts(hidden, answer_ids, self.det_id)
        if len(rows):
            boxes, obj = self.visual.detect(z1, e)
            out["boxes"] = (boxes_to_corners(boxes[0]).clamp(0, 1) * torch.tensor([H, W, H, W], dtype=torch.float32)).numpy()
            out["scores"] = obj[0].sigmoid().numpy()
        if mask_prob is not None and closer:
            roi = roi_from_mask((mask_prob >= cfg.mask_threshold).numpy(), cfg.closer_margin, cfg.closer_min)
            if roi is not None:
                crop = crop_resize(img, roi, cfg.image_size)
                vis12 = slices_to_inputs([img.numpy(), crop.numpy()], vcfg, self.processor)
                answer1 = self.tokenizer.decode(ids1[0, _prompt_len(ids1, self.tokenizer) :].tolist(), skip_special_tokens=False)
                turns = [Turn(question, vis12.n_image_tokens[:1], answer1), Turn(CLOSER_QUESTION.format(name=target or "object"), vis12.n_image_tokens[1:])]
                ids2, text2, emitted2, forced2 = self._generate(turns, vis12, [self.closer_id], max_new_tokens)
                hidden2 = self._hidden(ids2, vis12)
                rows, e = self.prompts(hidden2, _after_last_turn(ids2, self.tokenizer), self.closer_id)
                if len(rows):
                    z2 = self.visual.encode(crop[None])
                    refined = self.visual.segment(z2, e)[0].sigmoid()
                    mask_prob = paste(mask_prob, refined, roi)
                    scale = (H / cfg.image_size, W / cfg.image_size)
                    out["closer"] = {
                        "roi": [int(round(roi[0] * scale[0])), int(round(roi[1] * scale[1])), int(round(roi[2] * scale[0])), int(round(roi[3] * scale[1]))],
                        "text": _clean(text2),
                        "forced": forced2,
                    }
        if mask_prob is not None:
            out["prob"] = _to_input(mask_prob, H, W)
        return out


def _to_input(prob: torch.Tensor, H: int, W: int) -> np.ndarray:
    import torch.nn.functional as F

    return F.interpolate(prob[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0].numpy()


def _clean(text: str) -> str:
    for t in ROUTING_TOKENS:
        text = text.replace(t, "")
    return " ".join(text.split())


def _assistant_starts(ids: torch.Tensor, tokenizer) -> list[int]:
    """Positions right after each ``<|im_start|>assistant\\n``."""
    marker = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    seq = ids[0].tolist()
    n = len(marker)
    return [p + n for p in range(len(seq) - n + 1) if seq[p : p + n] == marker]


def _prompt_len(ids: torch.Tensor, tokenizer) -> int:
    return _assistant_starts(ids, tokenizer)[-1]


def _after_last_turn(ids: torch.Tensor, tokenizer) -> torch.Tensor:
    """``ids`` with everything before the last answer blanked (-1), so only that answer's tokens are found."""
    out = ids.clone()
    out[:, : _prompt_len(ids, tokenizer)] = -1
    return out
