"""The structured appearance description of one object on one axial slice (001 §4), from its mask.

001 has a general-purpose LVLM write a JSON per object (shape, size, position, adjacency,
intensity/texture, boundary) from the slice, the box and the centre point, then humans check it.
Here the mask and the HU image are exact, so every field is *measured* instead, with fixed, readable
rules (thresholds below), and rendered to one sentence the VLM learns to say. The same rules read a
predicted mask, so a stated description can be checked against the mask it comes with
(:func:`stated_position`).

Slices are 2-D arrays in the project's array order ``[i, j]``: i = patient right -> left, j =
anterior -> posterior (see ``lib.data.synthetic.study``).
"""
from __future__ import annotations

import re
from typing import Mapping, Optional, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

FIELDS = ("shape", "size", "position", "adjacency", "intensity", "texture", "boundary")
#: Body voxels for the position frame (air and the table are below it).
BODY_HU = -400.0
#: Size classes by in-plane area (mm^2).
SIZE_CLASSES = ((500.0, "small"), (5000.0, "medium"), (float("inf"), "large"))
LR_WORDS = ("right", "central", "left")  # patient right first: i grows towards the patient's left
AP_WORDS = ("anterior", "mid", "posterior")


def _thirds(value: float, lo: float, hi: float) -> int:
    t = (value - lo) / max(hi - lo, 1e-6)
    return 0 if t < 1.0 / 3.0 else (2 if t > 2.0 / 3.0 else 1)


def body_extent(image_hu: np.ndarray) -> tuple[float, float, float, float]:
    """(i_lo, j_lo, i_hi, j_hi) of the body on the slice (the frame position words refer to)."""
    idx = np.argwhere(np.asarray(image_hu) > BODY_HU)
    if idx.size == 0:
        n, m = image_hu.shape
        return 0.0, 0.0, float(n), float(m)
    return float(idx[:, 0].min()), float(idx[:, 1].min()), float(idx[:, 0].max() + 1), float(idx[:, 1].max() + 1)


def position_phrase(centroid_ij: Sequence[float], extent: Sequence[float]) -> str:
    """'right anterior', 'central', 'left posterior', ...: thirds of the body extent in i and j."""
    lr = LR_WORDS[_thirds(centroid_ij[0] + 0.5, extent[0], extent[2])]
    ap = AP_WORDS[_thirds(centroid_ij[1] + 0.5, extent[1], extent[3])]
    return lr if ap == "mid" else f"{lr} {ap}"


def mask_position(mask: np.ndarray, image_hu: np.ndarray) -> Optional[str]:
    """The position phrase of a mask's centroid on its slice (None for an empty mask)."""
    if not np.any(mask):
        return None
    return position_phrase(ndimage.center_of_mass(np.asarray(mask) > 0), body_extent(image_hu))


_POSITION_RE = re.compile(r"\bin the (right|central|left)(?: (anterior|posterior))? (?:abdomen|chest|body)\b")


def stated_position(text: str) -> Optional[str]:
    """The position phrase an answer states ('in the left posterior abdomen' -> 'left posterior')."""
    m = _POSITION_RE.search(text or "")
    if not m:
        return None
    return m.group(1) if not m.group(2) else f"{m.group(1)} {m.group(2)}"


def shape_word(mask: np.ndarray, spacing: Sequence[float]) -> str:
    """round / oval / elongated / irregular from the axis ratio (second moments, mm) and solidity."""
    idx = np.argwhere(mask).astype(float)
    if len(idx) < 3:
        return "round"
    pts = idx * np.asarray(spacing[:2], float)
    ev = np.sort(np.linalg.eigvalsh(np.cov(pts.T) + 1e-6 * np.eye(2)))
    ratio = float(np.sqrt(ev[1] / max(ev[0], 1e-6)))
    corners = np.concatenate([idx + d for d in ((0, 0), (0, 1), (1, 0), (1, 1))])
    try:
        solidity = len(idx) / max(ConvexHull(corners).volume, 1.0)
    except QhullError:
        solidity = 1.0
    if solidity < 0.75:
        return "irregular"
    if ratio < 1.3:
        return "round"
    return "oval" if ratio < 2.2 else "elongated"


def size_text(mask: np.ndarray, spacing: Sequence[float]) -> tuple[str, list[int]]:
    """('large', [w, h]) - size class by area and the in-plane extent in whole mm (i then j)."""
    idx = np.argwhere(mask)
    ext = (idx.max(0) - idx.min(0) + 1) * np.asarray(spacing[:2], float)
    area = float(mask.sum()) * float(spacing[0]) * float(spacing[1])
    cls = next(name for limit, name in SIZE_CLASSES if area < limit)
    return cls, [int(round(v)) for v in ext]


def _ring(mask: np.ndarray, width: int = 2) -> np.ndarray:
    return ndimage.binary_dilation(mask, iterations=width) & ~mask


def adjacency(mask: np.ndarray, structures: np.ndarray, names: Mapping[int, str], exclude: Sequence[int] = (), top: int = 2) -> list[str]:
    """Names of the structures touching the mask's 2-pixel ring, most contact first (at most ``top``)."""
    ring = structures[_ring(mask)]
    ids, counts = np.unique(ring[ring > 0], return_counts=True)
    order = [int(i) for _, i in sorted(zip(-counts, ids)) if int(i) not in exclude and int(i) in names]
    return [names[i] for i in order[:top]]


def intensity_words(image_hu: np.ndarray, mask: np.ndarray, reference: Optional[np.ndarray], reference_name: str = "") -> dict[str, str]:
    """intensity (relative to ``reference`` pixels, or an absolute HU band), texture and boundary."""
    inside = image_hu[mask].astype(float)
    mean, sd = float(inside.mean()), float(inside.std())
    ring = image_hu[_ring(mask) & (image_hu > BODY_HU)].astype(float)
    contrast = abs(mean - float(ring.mean())) if ring.size else 0.0
    if reference is not None and reference.any():
        diff = mean - float(image_hu[reference].mean())
        rel = "hypodense" if diff < -15 else ("hyperdense" if diff > 15 else "isodense")
        intensity = f"{rel} to the {reference_name}, mean {int(round(mean))} HU" if reference_name else f"{rel}, mean {int(round(mean))} HU"
    else:
        band = "fat" if mean < -30 else ("fluid" if mean < 20 else ("soft-tissue" if mean < 90 else ("enhancing" if mean < 250 else "bone")))
        intensity = f"{band} density, mean {int(round(mean))} HU"
    texture = "homogeneous" if sd < 30 else "heterogeneous"
    boundary = "well-defined" if contrast > 50 else ("moderately defined" if contrast > 20 else "ill-defined")
    return {"intensity": intensity, "texture": texture, "boundary": boundary}


def describe(
    mask: np.ndarray,
    image_hu: np.ndarray,
    spacing: Sequence[float],
    structures: np.ndarray,
    names: Mapping[int, str],
    self_ids: Sequence[int] = (),
    host_mask: Optional[np.ndarray] = None,
    host_name: str = "",
) -> dict:
    """The §4 JSON of one object: ``{"shape", "size", "position", "adjacency", "intensity", "texture", "boundary"}``.

    ``structures``: the slice's structure map (ids -> ``names``) for adjacency, ``self_ids`` the
    object's own ids there. Lesions pass their ``host_mask``/``host_name`` (the organ): intensity
    is then relative to the organ and the organ is named first among the neighbours.
    """
    mask = np.asarray(mask) > 0
    if not mask.any():
        raise ValueError("cannot describe an empty mask")
    cls, ext = size_text(mask, spacing)
    adj = adjacency(mask, structures, names, exclude=self_ids)
    if host_name:
        adj = [host_name] + [a for a in adj if a != host_name][:1]
    return {
        "shape": shape_word(mask, spacing),
        "size": f"{cls}, {ext[0]} x {ext[1]} mm",
        "position": mask_position(mask, image_hu),
        "adjacency": adj,
        **intensity_words(image_hu, mask, host_mask, host_name),
    }


def _join(names: Sequence[str]) -> str:
    names = [f"the {n}" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def appearance_sentence(name: str, app: Mapping, region: str = "abdomen") -> str:
    """One sentence from the JSON, e.g. 'The liver is a large, 180 x 150 mm, irregular structure in
    the right anterior abdomen, adjacent to the right kidney; soft-tissue density, mean 60 HU,
    homogeneous, with a well-defined boundary.'"""
    adj = f", adjacent to {_join(app['adjacency'])}" if app.get("adjacency") else ""
    return (
        f"The {name} is a {app['size']}, {app['shape']} structure in the {app['position']} {region}{adj}; "
        f"{app['intensity']}, {app['texture']}, with a {app['boundary']} boundary."
    )
