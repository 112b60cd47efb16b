"""SliceSamples -> one training batch: canonical images/masks, boxes, closer-look ROIs and dialogues.

Every sample is one dialogue: round 1 (the slice, the question, the appearance answer with its
routing tokens) and, when the answer carries ``[seg]``, round 2 (the ROI cropped from the
ground-truth mask, 001 §3.2, and the closer-look question, answered with ``[closer]``). Round 2 sees
round 1 as history in the same sequence, so one LM forward gives every routing embedding and the
eq. 7 cross-entropy of both rounds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lib.data.slice_grounding import SEG, DET, SliceSample
from lib.networks.vlm import Turn, VisionInputs, concat_inputs, encode_dialogue, pad_batch, slices_to_inputs, window_hu

from .closer import crop_resize, roi_from_mask
from .config import SegDetExplainConfig


@dataclass
class Batch:
    images: torch.Tensor  # (B, S, S) windowed [0, 1]
    masks: torch.Tensor  # (B, S, S) {0, 1}
    boxes: list[torch.Tensor]  # B x (K, 4) corner boxes, normalised to [0, 1]
    has_seg: list[bool]
    has_det: list[bool]
    rois: list[Optional[tuple[int, int, int, int]]]  # ROI (pixels at S) of samples with a closer look
    roi_images: torch.Tensor  # (R, S, S)
    roi_masks: torch.Tensor  # (R, S, S)
    enc: dict[str, torch.Tensor]
    vis: VisionInputs


def canonical_image(image_hu: np.ndarray, size: int, vlm_cfg) -> torch.Tensor:
    """HU slice -> windowed [0, 1] tensor (size, size)."""
    x = torch.as_tensor(window_hu(image_hu, vlm_cfg.window_level, vlm_cfg.window_width))[None, None]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[0, 0]


def canonical_mask(mask: np.ndarray, size: int) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(mask, np.float32))[None, None]
    return (F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[0, 0] >= 0.5).float()


def normalised_boxes(boxes: np.ndarray, shape: Sequence[int]) -> torch.Tensor:
    scale = np.array([shape[0], shape[1], shape[0], shape[1]], float)
    return torch.as_tensor(np.asarray(boxes, float).reshape(-1, 4) / scale, dtype=torch.float32)


def collate(samples: Sequence[SliceSample], cfg: SegDetExplainConfig, tokenizer, processor, closer: bool = True) -> Batch:
    vcfg = cfg.vlm_config
    s = cfg.image_size
    images = torch.stack([canonical_image(x.image, s, vcfg) for x in samples])
    masks = torch.stack([canonical_mask(x.mask, s) for x in samples])
    encs, visions, rois, roi_imgs, roi_masks = [], [], [], [], []
    for n, x in enumerate(samples):
        roi = roi_from_mask(masks[n].numpy(), cfg.closer_margin, cfg.closer_min) if (closer and SEG in x.answer) else None
        slices = [images[n].numpy()]
        if roi is not None:
            roi_imgs.append(crop_resize(images[n], roi, s))
            roi_masks.append((crop_resize(masks[n], roi, s) >= 0.5).float())
            slices.append(roi_imgs[-1].numpy())
        rois.append(roi)
        vis = slices_to_inputs(slices, vcfg, processor)
        turns = [Turn(x.question, vis.n_image_tokens[:1], x.answer)]
        if roi is not None:
            turns.append(Turn(x.closer_question, vis.n_image_tokens[1:], x.closer_answer))
        encs.append(encode_dialogue(tokenizer, turns))
        visions.append(vis)
    empty = torch.zeros(0, s, s)
    return Batch(
        images=images,
        masks=masks,
        boxes=[normalised_boxes(x.boxes, x.mask.shape) for x in samples],
        has_seg=[SEG in x.answer for x in samples],
        has_det=[DET in x.answer for x in samples],
        rois=rois,
        roi_images=torch.stack(roi_imgs) if roi_imgs else empty,
        roi_masks=torch.stack(roi_masks) if roi_masks else empty,
        enc=pad_batch(encs, tokenizer.pad_token_id),
        vis=concat_inputs(visions),
    )
