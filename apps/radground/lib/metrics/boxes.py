"""Box utilities shared by the detection-style models (MedGrounder, Seg-det-explain, MedVol-R1).

Convention: boxes are corner boxes ``(x1, y1[, z1], x2, y2[, z2])`` in voxel index space with the
upper corner *exclusive* (a box from a single voxel at i is (i, i+1)), which is MONAI's
``StandardMode`` (``xyxy`` / ``xyzxyz``). IoU and GIoU come from ``monai.data.box_utils`` and are
differentiable (used as losses later).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from monai.data.box_utils import box_iou, box_pair_giou


def mask_to_box(mask) -> np.ndarray | None:
    """Tight corner box of a binary mask (upper corner exclusive), or None when the mask is empty."""
    a = mask.detach().cpu().numpy() if torch.is_tensor(mask) else np.asarray(mask)
    idx = np.argwhere(a > 0)
    if idx.size == 0:
        return None
    return np.concatenate([idx.min(0), idx.max(0) + 1]).astype(float)


def box_voxel_to_world(box: Sequence[float], affine: np.ndarray) -> np.ndarray:
    """Corner box in voxels -> axis-aligned box in world mm (the frame of ``affine``, e.g. RAS).

    The voxel box spans voxel edges, i.e. centres lo-0.5 .. hi-0.5; all 8 corners are mapped and
    their bounding box taken, so flipped axes (negative affine entries) come out ordered.
    """
    box = np.asarray(box, float)
    nd = box.size // 2
    lo, hi = box[:nd] - 0.5, box[nd:] - 0.5
    corners = np.array(np.meshgrid(*[(lo[d], hi[d]) for d in range(nd)], indexing="ij")).reshape(nd, -1).T
    if nd == 2:
        corners = np.concatenate([corners, np.zeros((len(corners), 1))], axis=1)
    world = (np.asarray(affine, float)[:3, :3] @ corners.T).T + np.asarray(affine, float)[:3, 3]
    world = world[:, :nd]
    return np.concatenate([world.min(0), world.max(0)])


def iou_matrix(boxes_a, boxes_b) -> torch.Tensor:
    """(N, M) IoU between two sets of 2D or 3D corner boxes."""
    return box_iou(torch.as_tensor(boxes_a, dtype=torch.float32), torch.as_tensor(boxes_b, dtype=torch.float32))


def paired_giou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """(N,) generalised IoU of aligned pairs; differentiable, for GIoU losses."""
    return box_pair_giou(boxes_a, boxes_b)
