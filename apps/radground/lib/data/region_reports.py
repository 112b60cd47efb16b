"""Reg2RG's inputs and targets (004 §3.2-3.4): region crops and masks, prompts, RRA targets.

Per study and region: the *texture* input is the region volume (mask ⊙ CT, -1024 HU outside),
cropped to the region's bounding box and resized to the encoder's size; the *geometry* input is
the uncropped mask (on the body box the global volume uses) resized to the mask encoder's size;
the *global* input is the whole body box. HU are clipped to [-1000, 200] and scaled as
(HU + 400) / 600, as in the authors' code. Resizing is MONAI's ``Resize`` in ``area`` mode
(averaging, so a 256-voxel axis shrunk to 32 does not alias).

Targets follow the region-report alignment (RRA) strategy: the regions are shuffled every step,
the prompt names them only by position (``The region i is <region_i>.``), and the target writes
each region's report after the prefix ``The region i is <area name>:``; at inference the prefix is
read back (the recognised area) and stripped, and the area is checked against the region given.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from monai.transforms import Resize

from lib.anatomy.labels import REGION_IDS

#: The 10 regions in their canonical order (label ids 1..10 of a region map).
REGION_NAMES: tuple[str, ...] = tuple(REGION_IDS)
HU_CLIP = (-1000.0, 200.0)
OUTSIDE_HU = -1024.0
#: Body box threshold: air around the patient stays out of the global volume and the mask frame.
BODY_HU = -500.0
INSTRUCTION = "Write the report of each region: first name its anatomical area, then describe it."
GLOBAL_INTRO = "The global information is provided as the context: <image>."

_PREFIX_RE = re.compile(r"The region (\d+) is ([A-Za-z][A-Za-z ]*?)\s*:")


# ---------------------------------------------------------------------- volumes
def normalise_hu(x: np.ndarray) -> np.ndarray:
    return ((np.clip(x, *HU_CLIP) + 400.0) / 600.0).astype(np.float32)


def bounding_box(mask: np.ndarray) -> Optional[tuple[slice, ...]]:
    idx = np.nonzero(mask)
    if not idx[0].size:
        return None
    return tuple(slice(int(a.min()), int(a.max()) + 1) for a in idx)


def _resize(x: np.ndarray, size: Sequence[int]) -> torch.Tensor:
    return Resize(spatial_size=tuple(size), mode="area")(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)[None]).as_tensor()


@dataclass
class RegionInputs:
    """Encoder inputs of one study: regions in ``names`` order (absent regions left out)."""

    names: list[str]
    global_volume: torch.Tensor  # (1, 1, *image_size)
    crops: torch.Tensor  # (R, 1, *image_size)
    masks: torch.Tensor  # (R, 1, *mask_size)
    voxels: dict[str, int] = field(default_factory=dict)

    def subset(self, order: Sequence[int]) -> "RegionInputs":
        order = list(order)
        return RegionInputs([self.names[i] for i in order], self.global_volume, self.crops[order], self.masks[order], self.voxels)


def region_inputs(
    image_hu: np.ndarray,
    region_map: np.ndarray,
    image_size: Sequence[int],
    mask_size: Sequence[int],
    regions: Optional[Sequence[str]] = None,
    min_voxels: int = 8,
    outside_hu: float = OUTSIDE_HU,
) -> RegionInputs:
    """Global volume, per-region texture crops and geometry masks (004 eq. 3, 4, 7).

    ``region_map`` holds REGION_IDS; ``regions`` restricts (and orders) the regions, default all
    in canonical order. Regions with fewer than ``min_voxels`` voxels are absent (a stray voxel of
    a segmentation is no region to describe). ``outside_hu``: the value of the texture crop outside the
    region's mask (see ``Reg2RGConfig.texture_outside_hu``).
    """
    img = np.asarray(image_hu, dtype=np.float32)
    lab = np.asarray(region_map)
    if img.shape != lab.shape:
        raise ValueError(f"image {img.shape} and region map {lab.shape} differ in shape")
    body = bounding_box(img > BODY_HU) or tuple(slice(0, s) for s in img.shape)
    glb = _resize(normalise_hu(img[body]), image_size)[None]
    names, crops, masks, voxels = [], [], [], {}
    for name in regions or REGION_NAMES:
        m = lab == REGION_IDS[name]
        n = int(m.sum())
        if n < min_voxels:
            continue
        box = bounding_box(m)
        tex = np.where(m[box], img[box], outside_hu)
        crops.append(_resize(normalise_hu(tex), image_size))
        masks.append(_resize(m[body].astype(np.float32), mask_size))
        names.append(name)
        voxels[name] = n
    if not names:
        empty = torch.zeros((0, 1, *image_size)), torch.zeros((0, 1, *mask_size))
        return RegionInputs([], glb, *empty, voxels)
    return RegionInputs(names, glb, torch.stack(crops), torch.stack(masks), voxels)


#: Regions whose holes are findings: a solid organ with a lesion the anatomy task labels as something
#: else. Not the shells (pleura, bone, breast, mediastinum), whose "holes" are the organs they wrap.
FILLED_REGIONS: tuple[str, ...] = ("lung",)


def fill_region_holes(
    region_map: np.ndarray, regions: Sequence[str] = FILLED_REGIONS, axial_axis: int = 2, closing_iterations: int = 2
) -> np.ndarray:
    """Give ``regions`` back what they enclose: the anatomy task leaves dense lung findings out of the
    lung mask, labelling them pleura, abdomen or background (a mass keeps about half its voxels in the
    lung, a consolidation a quarter; measured in the README), so the texture crop (mask ⊙ CT) misses
    them. Each connected piece of a region (each lung on its own, so the two lungs never bridge over
    the mediastinum) gets a 3D closing (6-connected, ``closing_iterations``; a peripheral lesion is
    open in 3D) and a hole fill in each slice along ``axial_axis``; the voxels added are taken from
    whatever label they had. Closing and per-slice filling commute with axis flips and permutations,
    so the result is the same on the input grid and oriented.
    """
    from scipy import ndimage as ndi

    lab = np.asarray(region_map)
    out = lab.copy()
    k = max(0, int(closing_iterations))
    st = ndi.generate_binary_structure(3, 1)
    for name in regions:
        rid = REGION_IDS[name]
        pieces, _ = ndi.label(lab == rid, structure=st)
        for i, sl in enumerate(ndi.find_objects(pieces), start=1):
            box = tuple(slice(max(0, s.start - k), min(dim, s.stop + k)) for s, dim in zip(sl, lab.shape))
            sub = np.pad(pieces[box] == i, k) if k else pieces[box] == i
            closed = (ndi.binary_closing(sub, structure=st, iterations=k) | sub) if k else sub
            slices = np.moveaxis(closed, axial_axis, 0)
            filled = np.moveaxis(np.stack([ndi.binary_fill_holes(z) if z.any() else z for z in slices]), 0, axial_axis)
            if k:
                filled = filled[tuple(slice(k, m - k) for m in filled.shape)]
            view = out[box]
            view[filled] = rid
    return out


# ---------------------------------------------------------------------- text
def region_prefix(index: int, area: str) -> str:
    """RRA prefix P_i = 'The region i is <area name>:' (004 §3.4)."""
    return f"The region {index} is {area}:"


def build_prompt(n_regions: int, use_global: bool = True, use_local: bool = True) -> str:
    """Prompt text with ``<image>`` and one ``<region_i>`` per region (004 §3.3), then the instruction."""
    parts = [GLOBAL_INTRO] if use_global else []
    if use_local:
        parts += [f"The region {i} is <region_{i}>." for i in range(n_regions)]
    parts.append(INSTRUCTION)
    return " ".join(parts)


def build_target(order: Sequence[str], reports: Mapping[str, str]) -> str:
    """The restructured report: each region's report after its RRA prefix, in the given order."""
    return " ".join(f"{region_prefix(i, area)} {' '.join(str(reports.get(area, '')).split())}" for i, area in enumerate(order))


def shuffled(names: Sequence[str], rng: np.random.Generator) -> list[int]:
    """A fresh region order for one training step (004 §3.4: no fixed sequence to lean on)."""
    return [int(i) for i in rng.permutation(len(names))]


def encode_example(tokenizer, prompt: str, target: Optional[str] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Token ids of BOS + prompt (+ target + EOS) and labels (-100 on the prompt), 1-D."""
    p = [tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if target is None:
        return torch.tensor(p, dtype=torch.long), None
    t = tokenizer(" " + target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor(p + t, dtype=torch.long)
    labels = torch.tensor([-100] * len(p) + t, dtype=torch.long)
    return ids, labels


@dataclass
class GeneratedRegion:
    index: int
    recognised_area: Optional[str]  # a REGION_NAMES entry, or None when the prefix names no known area
    raw_area: str
    text: str  # the report with its prefix stripped


def parse_generated(text: str) -> list[GeneratedRegion]:
    """Split generated text at each RRA prefix; the prefix is read (recognised area) and stripped."""
    matches = list(_PREFIX_RE.finditer(text))
    out = []
    for k, m in enumerate(matches):
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        raw = " ".join(m.group(2).lower().split())
        out.append(GeneratedRegion(int(m.group(1)), raw if raw in REGION_IDS else None, raw, text[m.end() : end].strip()))
    return out


def strip_prefixes(text: str) -> str:
    """The generated report without any RRA prefix (what is evaluated, 004 §3.4)."""
    return " ".join(_PREFIX_RE.sub(" ", text).split())


def align_to_regions(generated: Sequence[GeneratedRegion], given: Sequence[str]) -> list[dict]:
    """One record per region given, in prompt order: its text, the recognised area and whether it matched.

    A region the model wrote nothing for gets empty text and ``recognised_area`` None; a repeated
    index keeps its first section.
    """
    first: dict[int, GeneratedRegion] = {}
    for g in generated:
        first.setdefault(g.index, g)
    out = []
    for i, name in enumerate(given):
        g = first.get(i)
        out.append(
            {
                "index": i,
                "region": name,
                "text": g.text if g else "",
                "recognised_area": g.recognised_area if g else None,
                "matched": bool(g and g.recognised_area == name),
            }
        )
    return out


# ---------------------------------------------------------------------- studies
#: The project's array orientation (lib.transforms.ct): training and inference see the same axes.
ORIENTATION = {"axcodes": "LPS", "labels": (("L", "R"), ("P", "A"), ("I", "S"))}


def load_oriented(path: str) -> np.ndarray:
    """A volume or label file as a 3D array in the project's orientation."""
    from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation

    x = Compose([LoadImage(image_only=True), EnsureChannelFirst(), Orientation(**ORIENTATION)])(path)
    return np.asarray(x[0])


def region_targets(truth: Optional[Mapping], report: Optional[str]) -> dict[str, str]:
    """Region -> region report: the truth's ``region_reports`` (synthetic studies), else the report's
    region sections as the project's parser finds them (headings stripped, impression left out)."""
    if truth and isinstance(truth.get("region_reports"), Mapping):
        return {r: " ".join(str(t).split()) for r, t in truth["region_reports"].items() if r in REGION_IDS and str(t).strip()}
    if not report or not report.strip():
        return {}
    from lib.reports import parse_report

    parsed = parse_report(report)
    return {r: t for r in REGION_NAMES if (t := parsed.region_text(r).strip())}
