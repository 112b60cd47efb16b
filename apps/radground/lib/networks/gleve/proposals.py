"""Voxel-level response (000 eq. 3) and candidate generation (000 §2.3).

    S_i(x) = max_m cos(q_i^(m), F~(x))

Candidates: an adaptive threshold on S_i, 3D connected components of the voxels above it, and the
Top-K_p components ranked by mean (or peak) response. The threshold is **Otsu's** (scikit-image)
computed over the lesion's search region - the soft map of its reported organ above
``region_min`` (the whole volume when that region is empty) - so it adapts to each lesion and
image; ``method="mean_std"`` uses mean + k * std over the same region instead. With
``restrict_to_region`` the components are also cut to the search region. Components come from
``scipy.ndimage.label``; selection is discrete, so candidates carry no gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


@dataclass
class Candidate:
    """One connected component P_i^(k) in global voxel coordinates."""

    mask: torch.Tensor  # (X, Y, Z) bool, on the response's device
    bbox: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]  # (lo, hi) per axis, hi exclusive
    size: int  # voxels
    mean_response: float
    peak_response: float
    threshold: float


def response_map(queries: torch.Tensor, feats: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """S (N, X, Y, Z) from queries (N, M, C) and features (C, X, Y, Z) or (1, C, X, Y, Z)."""
    if feats.dim() == 5:
        if feats.shape[0] != 1:
            raise ValueError("response_map takes one volume (batch size 1)")
        feats = feats[0]
    q = F.normalize(queries, dim=-1, eps=eps)
    f = F.normalize(feats, dim=0, eps=eps)
    sim = torch.einsum("nmc,cxyz->nmxyz", q, f)
    return sim.max(dim=1).values


def adaptive_threshold(values: np.ndarray, method: str = "otsu", k_std: float = 1.0) -> Optional[float]:
    """Threshold of the response values of a search region (None when they are all equal)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or float(values.max() - values.min()) <= 1e-12:
        return None
    if method == "otsu":
        from skimage.filters import threshold_otsu

        return float(threshold_otsu(values))
    if method == "mean_std":
        return float(values.mean() + k_std * values.std())
    raise ValueError(f"unknown threshold method {method!r}; choose 'otsu' or 'mean_std'")


def extract_candidates(
    response: torch.Tensor,
    top_k: int,
    region: Optional[torch.Tensor] = None,
    method: str = "otsu",
    k_std: float = 1.0,
    min_voxels: int = 1,
    rank_by: str = "mean",
    restrict_to_region: bool = True,
    connectivity: int = 1,
) -> list[Candidate]:
    """Top-``top_k`` components of one response map (X, Y, Z), best first; [] when none.

    ``region`` is a boolean search region (X, Y, Z) or None (whole volume).
    """
    if rank_by not in ("mean", "peak"):
        raise ValueError("rank_by must be 'mean' or 'peak'")
    s = response.detach().float().cpu().numpy()
    reg = None if region is None else region.detach().cpu().numpy().astype(bool)
    if reg is not None and not reg.any():
        reg = None
    t = adaptive_threshold(s[reg] if reg is not None else s, method, k_std)
    if t is None:
        return []
    above = s > t
    if reg is not None and restrict_to_region:
        above &= reg
    labels, n = ndimage.label(above, structure=ndimage.generate_binary_structure(3, connectivity))
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(np.ones_like(s), labels, index)
    means = ndimage.mean(s, labels, index)
    peaks = ndimage.maximum(s, labels, index)
    keep = np.nonzero(sizes >= max(int(min_voxels), 1))[0]
    if keep.size == 0:
        return []
    key = means if rank_by == "mean" else peaks
    order = keep[np.argsort(-key[keep], kind="stable")][: max(int(top_k), 0)]
    boxes = ndimage.find_objects(labels)
    lab_t = torch.from_numpy(labels).to(response.device)
    out = []
    for j in order:
        sl = boxes[j]
        out.append(
            Candidate(
                mask=lab_t == int(j + 1),
                bbox=tuple((int(x.start), int(x.stop)) for x in sl),  # type: ignore[arg-type]
                size=int(sizes[j]),
                mean_response=float(means[j]),
                peak_response=float(peaks[j]),
                threshold=float(t),
            )
        )
    return out


def box_candidate(mask: torch.Tensor, response: torch.Tensor, threshold: float) -> Optional[Candidate]:
    """A candidate that is the bounding box of ``mask`` (X, Y, Z) - used to add the annotated
    lesion as a candidate during mask-supervised training when no proposal touches it."""
    idx = torch.nonzero(mask, as_tuple=False)
    if idx.numel() == 0:
        return None
    lo, hi = idx.min(0).values.tolist(), (idx.max(0).values + 1).tolist()
    box = torch.zeros_like(mask, dtype=torch.bool)
    box[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = True
    vals = response.detach()[box]
    return Candidate(
        mask=box,
        bbox=tuple(zip(lo, hi)),  # type: ignore[arg-type]
        size=int(box.sum()),
        mean_response=float(vals.mean()),
        peak_response=float(vals.max()),
        threshold=float(threshold),
    )
