"""Box utilities shared by the detection-style models (MedGrounder, Seg-det-explain, MedVol-R1).

Conventions
-----------
* A box is a corner box ``(x1, y1, x2, y2)`` (2D) or ``(x1, y1, z1, x2, y2, z2)`` (3D) along the
  array axes in that order, i.e. MONAI's ``StandardMode`` (``xyxy`` / ``xyzxyz``) with
  ``TO_REMOVE = 0``. Sets of boxes are ``(N, 4)`` / ``(N, 6)``.
* In voxel space the lower corner is *inclusive* and the upper corner *exclusive*: a box of a
  single voxel at index ``i`` is ``(i, i+1)``, its size is ``x2 - x1`` voxels, and
  ``mask[x1:x2, y1:y2, z1:z2]`` is exactly the box's voxels. Box coordinates are therefore voxel
  *edges*: edge ``e`` lies at continuous voxel coordinate ``e - 0.5`` (voxel centres at integers,
  the NIfTI/ITK convention).
* World (mm) boxes are axis-aligned boxes in the frame of the affine (e.g. RAS mm), lower corner
  first; a voxel box maps to the bounding box of its mapped corners (exact for axis-aligned
  affines, flipped axes included).

IoU and GIoU are MONAI's (:func:`monai.data.box_utils.box_iou`, ``box_giou``, ``box_pair_giou``)
and are differentiable torch ops (for GIoU losses). MONAI raises on boxes with negative size;
:func:`giou_loss` orders each predicted box's corners first so an untrained head cannot crash it.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from monai.data.box_utils import box_giou, box_iou, box_pair_giou, convert_box_mode
from scipy import ndimage

__all__ = [
    "mask_to_box",
    "instance_boxes",
    "box_voxel_to_world",
    "box_voxel_to_mm",
    "box_world_to_voxel",
    "box_size_mm",
    "to_corner_boxes",
    "iou_matrix",
    "giou_matrix",
    "paired_iou",
    "paired_giou",
    "giou_loss",
]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def _as_boxes(boxes) -> torch.Tensor:
    """Tensor view of boxes, float; keeps autograd and dtype of float tensors."""
    t = boxes if torch.is_tensor(boxes) else torch.as_tensor(np.asarray(boxes, float), dtype=torch.float32)
    if not t.is_floating_point():
        t = t.float()
    if t.ndim == 1:
        t = t[None]
    if t.ndim != 2 or t.shape[1] not in (4, 6):
        raise ValueError(f"boxes must be (N, 4) or (N, 6), got {tuple(t.shape)}")
    return t


# --------------------------------------------------------------------------- masks -> boxes

def mask_to_box(mask) -> Optional[np.ndarray]:
    """Tight voxel box of ``mask > 0`` (upper corner exclusive), float array; None when empty."""
    a = _np(mask)
    idx = np.argwhere(a > 0)
    if idx.size == 0:
        return None
    return np.concatenate([idx.min(0), idx.max(0) + 1]).astype(float)


def instance_boxes(instances) -> tuple[np.ndarray, np.ndarray]:
    """Tight voxel boxes of every instance of an integer instance map (0 = background).

    Returns ``(ids, boxes)``: the instance ids present (increasing) and their ``(n, 2*ndim)``
    boxes, upper corner exclusive. One pass (:func:`scipy.ndimage.find_objects`).
    """
    a = _np(instances).astype(np.int64)
    a = np.where(a > 0, a, 0)
    nd = a.ndim
    if not a.any():
        return np.zeros(0, np.int64), np.zeros((0, 2 * nd))
    ids, boxes = [], []
    for i, sl in enumerate(ndimage.find_objects(a), start=1):
        if sl is None:
            continue
        ids.append(i)
        boxes.append([s.start for s in sl] + [s.stop for s in sl])
    return np.asarray(ids, np.int64), np.asarray(boxes, float)


# --------------------------------------------------------------------------- voxel <-> world

def _affine(affine, nd: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear part (nd, nd) and translation (nd,) of an (nd+1)-square or 4x4 affine."""
    A = np.asarray(affine, float)
    if A.shape == (nd + 1, nd + 1):
        return A[:nd, :nd], A[:nd, nd]
    if A.shape == (4, 4):
        return A[:nd, :nd], A[:nd, 3]
    raise ValueError(f"affine of shape {A.shape} does not fit {nd}D boxes")


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(N, 2**nd, nd) corners of boxes given by (N, nd) lower / upper coordinates."""
    nd = lo.shape[1]
    grid = np.array(np.meshgrid(*[[0, 1]] * nd, indexing="ij")).reshape(nd, -1).T  # (2**nd, nd)
    return np.where(grid[None].astype(bool), hi[:, None], lo[:, None])


def box_voxel_to_world(box, affine) -> np.ndarray:
    """Voxel box(es) -> axis-aligned world box(es) in the frame of ``affine`` (e.g. RAS mm).

    ``box``: one box ``(2*nd,)`` or ``(N, 2*nd)``; the result has the same shape. Box edges are
    at voxel coordinates ``e - 0.5`` (see the module docstring); the 2**nd corners are mapped and
    their bounding box taken, so flipped axes (negative affine entries) come out ordered.
    ``affine`` maps voxel indices to world and is ``(nd+1, nd+1)`` or 4x4.
    """
    b = np.asarray(_np(box), float)
    single = b.ndim == 1
    b = np.atleast_2d(b)
    nd = b.shape[1] // 2
    A, t = _affine(affine, nd)
    c = _corners(b[:, :nd] - 0.5, b[:, nd:] - 0.5) @ A.T + t  # (N, 2**nd, nd)
    out = np.concatenate([c.min(1), c.max(1)], axis=1)
    return out[0] if single else out


def box_voxel_to_mm(box, spacing: Sequence[float], origin: Optional[Sequence[float]] = None) -> np.ndarray:
    """Voxel box(es) -> mm with a diagonal affine: ``spacing`` per axis and ``origin`` = the mm
    position of the *centre* of voxel 0 (default 0). So edge ``e`` maps to
    ``origin + (e - 0.5) * spacing``, and the box's extent is ``(x2 - x1) * spacing``."""
    nd = np.asarray(_np(box)).shape[-1] // 2
    s = np.broadcast_to(np.asarray(spacing, float), (nd,))
    o = np.zeros(nd) if origin is None else np.broadcast_to(np.asarray(origin, float), (nd,))
    A = np.eye(nd + 1)
    A[:nd, :nd] = np.diag(s)
    A[:nd, nd] = o
    return box_voxel_to_world(np.asarray(_np(box), float), A)


def box_world_to_voxel(box_world, affine) -> np.ndarray:
    """Inverse of :func:`box_voxel_to_world`: world box(es) -> continuous voxel box(es) (edge
    convention, upper exclusive), the bounding box of the mapped corners. Round with
    ``floor(lo)`` / ``ceil(hi)`` to get an index box covering it."""
    b = np.asarray(_np(box_world), float)
    single = b.ndim == 1
    b = np.atleast_2d(b)
    nd = b.shape[1] // 2
    A, t = _affine(affine, nd)
    c = (_corners(b[:, :nd], b[:, nd:]) - t) @ np.linalg.inv(A).T + 0.5
    out = np.concatenate([c.min(1), c.max(1)], axis=1)
    return out[0] if single else out


def box_size_mm(box, spacing: Sequence[float]) -> np.ndarray:
    """Extent of voxel box(es) in mm along each axis: ``(hi - lo) * spacing``."""
    b = np.asarray(_np(box), float)
    nd = b.shape[-1] // 2
    return (b[..., nd:] - b[..., :nd]) * np.broadcast_to(np.asarray(spacing, float), (nd,))


def to_corner_boxes(boxes, mode: str):
    """Boxes in any MONAI box mode (e.g. centre-size ``"ccwh"`` / ``"cccwhd"``, ``"xywh"``) ->
    this module's corner convention (``StandardMode``); differentiable for tensors."""
    t = _as_boxes(boxes)
    dst = "xyxy" if t.shape[1] == 4 else "xyzxyz"
    return convert_box_mode(t, src_mode=mode, dst_mode=dst)


# --------------------------------------------------------------------------- IoU / GIoU

def iou_matrix(boxes_a, boxes_b) -> torch.Tensor:
    """(N, M) IoU between two sets of 2D or 3D corner boxes (MONAI ``box_iou``)."""
    return box_iou(_as_boxes(boxes_a), _as_boxes(boxes_b))


def giou_matrix(boxes_a, boxes_b) -> torch.Tensor:
    """(N, M) generalised IoU, in [-1, 1] (MONAI ``box_giou``)."""
    return box_giou(_as_boxes(boxes_a), _as_boxes(boxes_b))


def paired_iou(boxes_a, boxes_b) -> torch.Tensor:
    """(N,) IoU of aligned pairs (MONAI has no paired IoU); differentiable."""
    a, b = _as_boxes(boxes_a), _as_boxes(boxes_b)
    if a.shape != b.shape:
        raise ValueError(f"paired boxes must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    nd = a.shape[1] // 2
    wa, wb = (a[:, nd:] - a[:, :nd]).clamp(min=0), (b[:, nd:] - b[:, :nd]).clamp(min=0)
    inter = (torch.minimum(a[:, nd:], b[:, nd:]) - torch.maximum(a[:, :nd], b[:, :nd])).clamp(min=0).prod(1)
    union = wa.prod(1) + wb.prod(1) - inter
    return inter / (union + torch.finfo(torch.float32).eps)


def paired_giou(boxes_a, boxes_b) -> torch.Tensor:
    """(N,) generalised IoU of aligned pairs (MONAI ``box_pair_giou``); differentiable."""
    return box_pair_giou(_as_boxes(boxes_a), _as_boxes(boxes_b))


def giou_loss(pred_boxes, target_boxes, reduction: str = "mean") -> torch.Tensor:
    """``1 - GIoU`` of aligned pairs, in [0, 2]; ``reduction`` 'mean' | 'sum' | 'none'.

    The predicted boxes' corners are ordered per axis first (``min`` / ``max``, differentiable),
    so a box with ``x2 < x1`` from an untrained head is scored instead of raising.
    """
    p = _as_boxes(pred_boxes)
    nd = p.shape[1] // 2
    p = torch.cat([torch.minimum(p[:, :nd], p[:, nd:]), torch.maximum(p[:, :nd], p[:, nd:])], dim=1)
    loss = 1.0 - paired_giou(p, target_boxes)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
