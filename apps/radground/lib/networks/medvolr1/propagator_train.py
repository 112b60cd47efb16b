"""Training the slice propagator on synthetic targets (teacher forcing on both of its uses).

From each query item: *key* samples (a slice with target, prompted by its jittered
connected-component boxes, memory = the prompt) and *propagation* samples (a slice next to a
non-empty one, no prompt, memory = the neighbour's target, randomly dilated or eroded by a pixel
so the network learns to correct drift; the slice may be empty, so it learns to stop).
Loss: MONAI ``DiceCELoss`` on sigmoid outputs, Dice over the whole batch (many targets are empty).
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
from monai.losses import DiceCELoss
from scipy import ndimage

from .propagator import SlicePropagator, boxes_to_mask
from .samples import QueryItem
from .targets import component_boxes

logger = logging.getLogger(__name__)


def _jitter(boxes: np.ndarray, size: int, rng: np.random.Generator, px: float) -> np.ndarray:
    b = boxes + rng.uniform(-px, px, boxes.shape)
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
    return np.clip(b, 0, size)


def _perturb(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    if r < 0.25:
        return ndimage.binary_dilation(mask)
    if r < 0.5:
        eroded = ndimage.binary_erosion(mask)
        return eroded if eroded.any() else mask
    return mask


def make_samples(item: QueryItem, rng: np.random.Generator, jitter_px: float = 1.5) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input (3, S, S), target (S, S)) pairs of one item."""
    img, m = item.seq.image, item.seq_mask
    T, S = img.shape[0], img.shape[1]
    out = []
    zero = np.zeros((S, S), np.float32)
    for t in np.nonzero(m.reshape(T, -1).any(1))[0]:
        prompt = boxes_to_mask(_jitter(component_boxes(m[t]), S, rng, jitter_px), S).astype(np.float32)
        out.append((np.stack([img[t], prompt, prompt]), m[t]))
        for d in (-1, 1):
            u = t + d
            if 0 <= u < T:
                out.append((np.stack([img[u], zero, _perturb(m[t], rng).astype(np.float32)]), m[u]))
    return out


def train_propagator(net: SlicePropagator, items: Sequence[QueryItem], epochs: int = 5, batch_size: int = 32, lr: float = 2e-3, seed: int = 0, log_every: int = 1) -> list[float]:
    """Train in place; returns the mean loss of each epoch."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    loss_fn = DiceCELoss(sigmoid=True, batch=True)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    history = []
    net.train()
    for epoch in range(epochs):
        pairs = [p for it in items for p in make_samples(it, rng)]
        order = rng.permutation(len(pairs))
        total, n = 0.0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            x = torch.as_tensor(np.stack([pairs[i][0] for i in idx]), dtype=torch.float32)
            y = torch.as_tensor(np.stack([pairs[i][1] for i in idx])[:, None], dtype=torch.float32)
            loss = loss_fn(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + float(loss) * len(idx), n + len(idx)
        history.append(total / max(n, 1))
        if log_every and (epoch + 1) % log_every == 0:
            logger.info("propagator epoch %d/%d loss %.4f (%d samples)", epoch + 1, epochs, history[-1], n)
    net.eval()
    return history
