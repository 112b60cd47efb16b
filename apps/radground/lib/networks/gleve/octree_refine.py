"""Octree autoregressive lesion refinement, OcRe (000 §2.4, eq. 6).

    Y^{l,j} = R_theta( Concat( Crop(F~, Omega^{l,j}), Crop(Up(Y^{l-1}), Omega^{l,j}) ) )

What is implemented:

* Root cube Omega: a cube around the chosen candidate's bounding box plus ``margin`` voxels, its
  side rounded up to a multiple of 2^(depth-1) (and at least ``min_block`` * 2^(depth-1), at most
  ``max_side``), shifted inside the volume where it fits; parts outside the volume are padded.
* Levels l = 1..depth. Level l splits the cube into 2^(l-1) nodes per axis (8^(l-1) octree
  nodes) and works at resolution side / 2^(depth-l): every node has the same grid of
  b = side / 2^(depth-1) voxels, so each subdivision doubles the resolution - the coarse-to-fine
  octree - and the last level is at full image resolution. Features of a level are the cube's F~
  average-pooled to that resolution.
* Autoregression: Y^0 is the (soft) chosen candidate; at level l the previous prediction's logits
  are upsampled (trilinear) to the level grid and cropped per node; the node's conditioning input
  is their sigmoid m^{l-1,j}, and R_theta predicts a residual on them:
  logit(Y^{l,j}) = Up(logit Y^{l-1})_j + R_theta(Concat(F^{l,j}, m^{l-1,j})). Passing logits, not
  probabilities, between levels keeps the gradient from vanishing where a level is confidently
  wrong. R_theta is one small 3D residual conv head shared by all levels and nodes; its output
  layer starts at zero, so at initialisation the refinement returns the (coarsened) candidate.
* Efficiency: the nodes of a level are cut out as one batch (``Tensor.unfold``) with a ``halo`` of
  context voxels each side (the head's receptive radius, so nodes see their neighbours' features)
  and only *active* nodes - those whose upsampled previous prediction is neither all below
  ``active_eps`` nor all above 1 - ``active_eps`` - go through R_theta; the others keep the
  upsampled previous prediction. Node predictions are folded back (merged) into Y^l.
* The refined cube is pasted into a full-volume logit map; outside the cube the logit is
  ``outside_logit`` (the lesion is taken to lie inside its root cube).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _logit(p: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """logit of p squeezed into [eps, 1 - eps] (affinely, so the gradient never vanishes)."""
    p = eps + (1.0 - 2.0 * eps) * p
    return torch.log(p) - torch.log1p(-p)


@dataclass
class RootCube:
    """The octree root Omega: corner ``lo`` (may lie outside the volume) and ``side`` voxels."""

    lo: tuple[int, int, int]
    side: int

    def slices(self, shape: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """(slices into the volume, slices into the cube) of their overlap."""
        vol, cube = [], []
        for lo, n in zip(self.lo, shape):
            a, b = max(lo, 0), min(lo + self.side, n)
            vol.append(slice(a, b))
            cube.append(slice(a - lo, b - lo))
        return tuple(vol), tuple(cube)


def make_root_cube(
    bbox: Sequence[tuple[int, int]], shape: Sequence[int], depth: int, margin: int = 4, min_block: int = 4, max_side: int = 128
) -> RootCube:
    """Cube enclosing ``bbox`` (lo, hi per axis) with ``margin``; side divisible by 2^(depth-1)."""
    unit = 2 ** (depth - 1)
    ext = max(hi - lo for lo, hi in bbox) + 2 * margin
    side = max(ext, min_block * unit)
    side = int(math.ceil(side / unit) * unit)
    side = min(side, max(int(max_side) // unit * unit, min_block * unit))
    lo = []
    for (a, b), n in zip(bbox, shape):
        start = int(round((a + b) / 2.0 - side / 2.0))
        start = min(max(start, 0), n - side) if n >= side else (n - side) // 2
        lo.append(start)
    return RootCube(lo=tuple(lo), side=side)  # type: ignore[arg-type]


def crop_cube(x: torch.Tensor, cube: RootCube) -> torch.Tensor:
    """(C, X, Y, Z) -> (C, s, s, s); voxels outside the volume are zero."""
    vol, _ = cube.slices(x.shape[1:])
    part = x[(slice(None),) + vol]
    pad = []
    for sl, lo in zip(reversed(vol), reversed(cube.lo)):
        before = sl.start - lo
        pad += [before, cube.side - before - (sl.stop - sl.start)]
    return F.pad(part, pad)


def paste_cube(cube_vals: torch.Tensor, cube: RootCube, shape: Sequence[int], fill: float) -> torch.Tensor:
    """Cube values (s, s, s) into a (X, Y, Z) map filled with ``fill`` elsewhere."""
    out = cube_vals.new_full(tuple(shape), fill)
    vol, inner = cube.slices(shape)
    out[vol] = cube_vals[inner]
    return out


class RefinementHead(nn.Module):
    """R_theta: conv 3^3 -> residual block (two 3^3 convs) -> conv 1^3 to one residual logit.
    No normalisation layer: nodes are processed independently and must not be re-normalised."""

    receptive_radius = 3

    def __init__(self, channels: int, hidden: int = 32):
        super().__init__()
        self.conv_in = nn.Conv3d(channels + 1, hidden, 3, padding=1)
        self.res = nn.Sequential(nn.GELU(), nn.Conv3d(hidden, hidden, 3, padding=1), nn.GELU(), nn.Conv3d(hidden, hidden, 3, padding=1))
        self.act = nn.GELU()
        self.conv_out = nn.Conv3d(hidden, 1, 1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, feats: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(torch.cat([feats, cond], dim=1))
        h = h + self.res(h)
        return self.conv_out(self.act(h))


def split_nodes(x: torch.Tensor, n: int, halo: int) -> torch.Tensor:
    """(C, r, r, r) -> (n^3, C, b + 2 halo, ...) node blocks (replicate-padded at the border)."""
    c, r = x.shape[0], x.shape[1]
    b = r // n
    if halo > 0:
        x = F.pad(x.unsqueeze(0), [halo] * 6, mode="replicate")[0]
    w = b + 2 * halo
    blocks = x.unfold(1, w, b).unfold(2, w, b).unfold(3, w, b)  # (C, n, n, n, w, w, w)
    return blocks.permute(1, 2, 3, 0, 4, 5, 6).reshape(n**3, c, w, w, w)


def merge_nodes(blocks: torch.Tensor, n: int) -> torch.Tensor:
    """(n^3, C, b, b, b) -> (C, n b, n b, n b)."""
    c, b = blocks.shape[1], blocks.shape[2]
    x = blocks.reshape(n, n, n, c, b, b, b).permute(3, 0, 4, 1, 5, 2, 6)
    return x.reshape(c, n * b, n * b, n * b)


@dataclass
class OctreeOutput:
    logits: torch.Tensor  # (X, Y, Z) full-volume refined logits Y^depth
    cube: RootCube
    level_logits: list[torch.Tensor] = field(default_factory=list)  # (r_l, r_l, r_l) per level
    active_nodes: list[int] = field(default_factory=list)  # refined nodes per level

    @property
    def probs(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


class OctreeRefiner(nn.Module):
    """OcRe with a parameter-shared refinement head."""

    def __init__(
        self,
        channels: int,
        hidden: int = 32,
        depth: int = 2,
        margin: int = 4,
        min_block: int = 4,
        max_side: int = 128,
        halo: int | None = None,
        active_eps: float = 0.01,
        outside_logit: float = -10.0,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError("octree depth must be >= 1")
        self.depth, self.margin, self.min_block, self.max_side = int(depth), int(margin), int(min_block), int(max_side)
        self.head = RefinementHead(channels, hidden)
        self.halo = RefinementHead.receptive_radius if halo is None else int(halo)
        self.active_eps = float(active_eps)
        self.outside_logit = float(outside_logit)

    def forward(self, feats: torch.Tensor, init_prob: torch.Tensor, bbox: Sequence[tuple[int, int]]) -> OctreeOutput:
        """feats F~ (C, X, Y, Z), init_prob Y^0 (X, Y, Z) in [0, 1], bbox of the chosen candidate."""
        shape = tuple(init_prob.shape)
        cube = make_root_cube(bbox, shape, self.depth, self.margin, self.min_block, self.max_side)
        fc = crop_cube(feats, cube)
        side = cube.side
        b = side // 2 ** (self.depth - 1)
        y0 = F.adaptive_avg_pool3d(crop_cube(init_prob.unsqueeze(0), cube).unsqueeze(0), b)[0]  # Y^0 on the root grid
        prev = _logit(y0)  # logits of the previous level, (1, r, r, r)
        levels, active_counts = [], []
        for level in range(1, self.depth + 1):
            n = 2 ** (level - 1)
            r = n * b
            feat_l = fc if r == side else F.avg_pool3d(fc.unsqueeze(0), side // r)[0]
            up = prev if prev.shape[-1] == r else F.interpolate(prev.unsqueeze(0), size=(r, r, r), mode="trilinear", align_corners=False)[0]
            m = torch.sigmoid(up)  # Up(Y^{l-1}), the conditioning mask
            base = split_nodes(up, n, 0)  # (n^3, 1, b, b, b): residual base, the upsampled logits
            m_nodes = split_nodes(m.detach(), n, 0).flatten(1)
            active = (m_nodes.amax(1) > self.active_eps) & (m_nodes.amin(1) < 1.0 - self.active_eps)
            if level == 1:
                active[:] = True
            idx = torch.nonzero(active, as_tuple=False).squeeze(1)
            if idx.numel():
                fb = split_nodes(feat_l, n, self.halo)[idx]
                mb = split_nodes(m, n, self.halo)[idx]
                delta = self.head(fb, mb)
                h = self.halo
                if h:
                    delta = delta[:, :, h:-h, h:-h, h:-h]
                base = base.index_copy(0, idx, base[idx] + delta)
            prev = merge_nodes(base, n)
            levels.append(prev[0])
            active_counts.append(int(idx.numel()))
        logits = prev[0]
        full = paste_cube(logits, cube, shape, self.outside_logit)
        return OctreeOutput(logits=full, cube=cube, level_logits=levels, active_nodes=active_counts)
