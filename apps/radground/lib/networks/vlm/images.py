"""CT slices -> the Qwen2.5-VL vision inputs (``pixel_values``, ``image_grid_thw``).

The Qwen processors need torchvision (not installable beside the CPU torch here), so the PIL-backend
image processor is used directly; slices are HU-windowed to [0, 1], resized to the canonical square
size here (so the token count is fixed and known), repeated to 3 channels and patchified by the
processor (CLIP normalisation, temporal patch duplication), exactly as a real Qwen2.5-VL expects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import VLMConfig


def window_hu(hu: np.ndarray, level: float = 40.0, width: float = 400.0) -> np.ndarray:
    """HU -> [0, 1] float32 through a display window (abdominal soft tissue by default)."""
    lo = level - width / 2.0
    return np.clip((np.asarray(hu, dtype=np.float32) - lo) / float(width), 0.0, 1.0)


def make_image_processor(cfg: VLMConfig):
    """The PIL-backend Qwen2-VL image processor: from ``cfg.vlm_path`` if set, else with ``cfg``'s patching."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if cfg.vlm_path:
        proc = Qwen2VLImageProcessorPil.from_pretrained(cfg.vlm_path, local_files_only=True)
    else:
        proc = Qwen2VLImageProcessorPil(patch_size=cfg.patch_size, merge_size=cfg.merge_size, temporal_patch_size=cfg.temporal_patch_size)
    proc.do_resize = False  # resized here, so the number of visual tokens is fixed
    proc.do_rescale = False  # inputs are already in [0, 1]
    return proc


def canonical_size(cfg: VLMConfig, processor) -> int:
    """``cfg.image_size`` rounded to a multiple of the processor's patch_size * merge_size."""
    f = int(processor.patch_size) * int(processor.merge_size)
    return max(f, int(round(cfg.image_size / f)) * f)


def resize_slice(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a 2-D float slice to size x size."""
    t = torch.as_tensor(np.asarray(img, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


@dataclass
class VisionInputs:
    pixel_values: torch.Tensor  # (sum of patches, C * T * P * P)
    image_grid_thw: torch.Tensor  # (n_images, 3)
    n_image_tokens: list[int]  # <|image_pad|> count per image (grid.prod() / merge_size**2)


def slices_to_inputs(
    slices: Sequence[np.ndarray], cfg: VLMConfig, processor=None, hu: bool = False
) -> VisionInputs:
    """One or several 2-D slices (windowed to [0, 1], or raw HU with ``hu=True``) -> vision inputs."""
    if len(slices) == 0:
        raise ValueError("no slices given")
    processor = processor or make_image_processor(cfg)
    size = canonical_size(cfg, processor)
    images = []
    for s in slices:
        s = np.asarray(s)
        if s.ndim != 2:
            raise ValueError(f"a slice must be 2-D, got shape {s.shape}")
        s = window_hu(s, cfg.window_level, cfg.window_width) if hu else np.clip(s.astype(np.float32), 0.0, 1.0)
        s = resize_slice(s, size)
        images.append(np.repeat(s[..., None], 3, axis=-1))
    out = processor(images=images, return_tensors="pt", input_data_format="channels_last")
    grid = out["image_grid_thw"]
    merge = int(processor.merge_size)
    return VisionInputs(out["pixel_values"], grid, [int(g.prod()) // (merge * merge) for g in grid])


def select_images(vis: VisionInputs, idx: Optional[Sequence[int]]) -> VisionInputs:
    """The inputs of a subset of the images (rows of ``pixel_values`` are per image, in order)."""
    if idx is None:
        return vis
    counts = [int(g.prod()) for g in vis.image_grid_thw]
    starts = np.cumsum([0] + counts)
    rows = torch.cat([vis.pixel_values[starts[i] : starts[i + 1]] for i in idx])
    return VisionInputs(rows, vis.image_grid_thw[list(idx)], [vis.n_image_tokens[i] for i in idx])


def concat_inputs(items: Sequence[VisionInputs]) -> VisionInputs:
    """Vision inputs of a batch of sequences (images in sequence order)."""
    return VisionInputs(
        torch.cat([v.pixel_values for v in items]), torch.cat([v.image_grid_thw for v in items]), [n for v in items for n in v.n_image_tokens]
    )
