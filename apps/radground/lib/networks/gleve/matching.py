"""Which annotated lesion is which report lesion: per-lesion masks for L_seg and teacher forcing.

L_seg compares each report lesion's refined mask with *its* annotated lesion, so an instance map
must be split into one mask per report lesion. When the data do not link them, this assigns
instances to lesions one-to-one (Hungarian, ``scipy.optimize.linear_sum_assignment``) by the same
evidence verification uses: share of the instance inside the reported organ plus volume agreement.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from lib.networks.gleve.report_graph import LesionTarget


def assign_instances(
    instance_map: torch.Tensor,
    targets: Sequence[LesionTarget],
    organ_masks: Sequence[Optional[torch.Tensor]],
    voxel_ml: float,
    min_overlap: float = 0.5,
) -> list[Optional[int]]:
    """Instance id (>0) of ``instance_map`` (X, Y, Z) for each lesion, or None.

    A pair is allowed only if at least ``min_overlap`` of the instance lies in the lesion's organ
    mask (when that mask is known)."""
    inst = torch.as_tensor(instance_map)
    ids = [int(i) for i in torch.unique(inst).tolist() if int(i) > 0]
    if not ids or not targets:
        return [None] * len(targets)
    gain = np.full((len(targets), len(ids)), -1.0)
    for j, iid in enumerate(ids):
        m = inst == iid
        n = float(m.sum())
        vol = n * float(voxel_ml)
        for i, t in enumerate(targets):
            om = organ_masks[i] if i < len(organ_masks) else None
            inside = 1.0 if om is None else float((m & om.to(m.device).bool()).sum()) / n
            if om is not None and inside < min_overlap:
                continue
            agree = min(vol, t.volume_ml) / max(vol, t.volume_ml) if t.has_volume else 0.5
            gain[i, j] = inside + agree
    rows, cols = linear_sum_assignment(-gain)
    out: list[Optional[int]] = [None] * len(targets)
    for r, c in zip(rows, cols):
        if gain[r, c] >= 0:
            out[r] = ids[c]
    return out


def lesion_target_masks(instance_map: torch.Tensor, assignment: Sequence[Optional[int]]) -> torch.Tensor:
    """(N, X, Y, Z) float masks: lesion i's assigned instance (all zero when unassigned)."""
    inst = torch.as_tensor(instance_map)
    masks = [(inst == a) if a is not None else torch.zeros_like(inst, dtype=torch.bool) for a in assignment]
    if not masks:
        return torch.zeros((0, *inst.shape))
    return torch.stack(masks).float()
