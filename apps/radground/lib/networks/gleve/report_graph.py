"""The lesion semantic graph G of 000 §2.2, built from the project's parsed report.

One graph per report (not one per lesion): the paper's intra-organ edges join lesions of the same
organ so that graph reasoning can compare them, which needs all of a report's lesions in one graph.

Nodes (each carries the text the frozen encoder embeds):

* lesion: one per groundable lesion unit (``ParsedReport.findings``), text = a structured
  description of the whole unit ("hypodense lesion in segment VII of the liver, 18 x 15 mm,
  35 HU") - the paper's atomic reasoning unit; ``lesion_text="sentence"`` uses the report sentence;
* anatomical: one organ node per organ named ("liver") and one sub-location node per
  (organ, sub-location) ("segment VII of the liver");
* attribute: per lesion, one node per stated field: size ("18 x 15 mm"), attenuation
  ("hypodense, 35 HU"), enhancement ("rim-enhancing"), lesion type ("cyst").

Edges ``u -> v`` (messages flow from u to v, 000 eq. 1) are typed by :class:`Rel`; every semantic
relation is added in both directions with its own type, plus a self loop on every node.

Each lesion also carries the report attributes that verification (000 eq. 4) and the weak losses
(000 eq. 7) compare with image statistics: organ key, reported volume (ellipsoid from the sizes)
and reported HU, either the number stated or an interval implied by the density word.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Optional, Sequence, Union

import torch

from lib.anatomy.labels import ORGAN_DISPLAY, organ_group
from lib.reports.schema import LesionUnit, ParsedReport, ellipsoid_volume_ml


class NodeType(IntEnum):
    LESION = 0
    ORGAN = 1
    SUB_LOCATION = 2
    ATTRIBUTE = 3


class Rel(IntEnum):
    """Relation types r_uv of 000 eq. 1 (edge u -> v)."""

    SELF = 0
    LESION_TO_ORGAN = 1  # organ attribution
    ORGAN_TO_LESION = 2
    LESION_TO_ATTR = 3  # lesion-attribute association
    ATTR_TO_LESION = 4
    ORGAN_CONTAINS = 5  # organ -> sub-location (containment)
    PART_OF_ORGAN = 6  # sub-location -> organ
    LESION_TO_SUBLOC = 7  # lesion located in a sub-location
    SUBLOC_TO_LESION = 8
    SAME_ORGAN = 9  # intra-organ lesion <-> lesion relation


NUM_RELATIONS = len(Rel)

#: HU intervals implied by a density word when no number is stated. ``relative`` intervals are
#: offsets from the organ's mean HU (lesion-background contrast, 000 §2.2); the others are
#: absolute. Chosen from usual contrast-CT values (the paper gives none).
DENSITY_HU: dict[str, tuple[float, float, bool]] = {
    "cystic": (-10.0, 20.0, False),
    "fat": (-150.0, -20.0, False),
    "calcified": (150.0, 1500.0, False),
    "hypodense": (-200.0, -15.0, True),
    "isodense": (-15.0, 15.0, True),
    "hyperdense": (15.0, 300.0, True),
}


@dataclass
class LesionTarget:
    """What the report says about one lesion, in the form the image statistics are compared with."""

    organ: str
    volume_ml: Optional[float] = None
    hu: Optional[float] = None
    hu_range: Optional[tuple[float, float]] = None
    hu_relative: bool = False  # hu_range is an offset from the organ's mean HU
    density: Optional[str] = None
    sub_location: tuple[str, ...] = ()
    count: int = 1
    text: str = ""

    @property
    def has_volume(self) -> bool:
        return self.volume_ml is not None and self.volume_ml > 0

    @property
    def has_hu(self) -> bool:
        return self.hu is not None or self.hu_range is not None

    def hu_interval(self, organ_mean_hu: Optional[float] = None) -> Optional[tuple[float, float]]:
        """Absolute reported HU interval: a stated number gives (hu, hu); a density word gives its
        interval (shifted by ``organ_mean_hu`` when relative; None when that mean is unknown)."""
        if self.hu is not None:
            return (float(self.hu), float(self.hu))
        if self.hu_range is None:
            return None
        lo, hi = self.hu_range
        if self.hu_relative:
            if organ_mean_hu is None or not math.isfinite(organ_mean_hu):
                return None
            return (organ_mean_hu + lo, organ_mean_hu + hi)
        return (lo, hi)


@dataclass
class LesionGraph:
    """G of one report: node texts, typed edges and the lesion nodes' indices."""

    node_texts: list[str]
    node_types: torch.Tensor  # (V,) long, NodeType
    edge_index: torch.Tensor  # (2, E) long, row 0 = source u, row 1 = target v
    edge_type: torch.Tensor  # (E,) long, Rel
    lesion_nodes: torch.Tensor  # (N,) long
    lesions: list[LesionTarget] = field(default_factory=list)
    node_embeddings: Optional[torch.Tensor] = None  # (V, d_text), filled by the text encoder

    @property
    def num_nodes(self) -> int:
        return len(self.node_texts)

    @property
    def num_lesions(self) -> int:
        return int(self.lesion_nodes.numel())

    def embed(self, encoder) -> "LesionGraph":
        """Fill ``node_embeddings`` with ``encoder.encode(node_texts)`` (frozen, cached)."""
        self.node_embeddings = encoder.encode(self.node_texts)
        return self


def _num(x: float) -> str:
    return f"{x:g}"


def organ_text(organ: str) -> str:
    return ORGAN_DISPLAY.get(organ, organ.replace("_", " "))


def size_text(size_mm: Sequence[float]) -> str:
    return " x ".join(_num(s) for s in size_mm) + " mm"


def attenuation_text(unit: LesionUnit) -> str:
    parts = [unit.density] if unit.density else []
    if unit.hu is not None:
        parts.append(f"{_num(unit.hu)} HU")
    return ", ".join(parts)


def lesion_description(unit: LesionUnit) -> str:
    """Structured one-lesion description (distinct for two lesions of one sentence)."""
    noun = unit.lesion_type or "lesion"
    density = None if (unit.density == "cystic" and noun == "cyst") else unit.density
    head = " ".join(x for x in (density, unit.enhancement, noun) if x)
    where = organ_text(unit.organ)
    if unit.sub_location:
        where = f"{', '.join(unit.sub_location)} of the {where}"
    else:
        where = f"the {where}"
    bits = [f"{head} in {where}"]
    if unit.size_mm:
        bits.append(size_text(unit.size_mm))
    if unit.hu is not None:
        bits.append(f"{_num(unit.hu)} HU")
    return ", ".join(bits)


def lesion_target(unit: LesionUnit) -> LesionTarget:
    """The report attributes of ``unit`` used by verification and the weak losses."""
    vol = unit.volume_ml
    if vol is None and unit.size_mm:
        vol = ellipsoid_volume_ml(list(unit.size_mm))
    rng, rel = None, False
    if unit.hu is None and unit.density in DENSITY_HU:
        lo, hi, rel = DENSITY_HU[unit.density]
        rng = (lo, hi)
    return LesionTarget(
        organ=unit.organ,
        volume_ml=vol,
        hu=unit.hu,
        hu_range=rng,
        hu_relative=rel,
        density=unit.density,
        sub_location=tuple(unit.sub_location),
        count=unit.count,
        text=unit.text,
    )


def organ_prior_channels(organ: str, organ_names: Sequence[str]) -> list[int]:
    """Channels of the organ maps that make up ``organ`` ("kidney" = both kidneys; else the
    organ itself, else every channel of its metrics group; [] when none is present)."""
    names = list(organ_names)
    if organ in names:
        return [names.index(organ)]
    group = organ_group(organ)
    return [i for i, n in enumerate(names) if organ_group(n) == group]


def same_organ(a: str, b: str) -> bool:
    """Same organ, counting an unsided "kidney" as the same organ as either kidney."""
    if a == b:
        return True
    return organ_group(a) == organ_group(b) and (a == organ_group(a) or b == organ_group(b))


def build_lesion_graph(report: Union[ParsedReport, Sequence[LesionUnit]], lesion_text: str = "structured") -> LesionGraph:
    """Build G from a parsed report (its ``findings``) or a list of lesion units."""
    if lesion_text not in ("structured", "sentence"):
        raise ValueError("lesion_text must be 'structured' or 'sentence'")
    units = list(report.findings) if isinstance(report, ParsedReport) else list(report)
    texts: list[str] = []
    types: list[int] = []
    edges: list[tuple[int, int, int]] = []

    def add(text: str, kind: NodeType) -> int:
        texts.append(text)
        types.append(int(kind))
        return len(texts) - 1

    def link(u: int, v: int, fwd: Rel, back: Rel) -> None:
        edges.append((u, v, int(fwd)))
        edges.append((v, u, int(back)))

    lesion_idx = [
        add(lesion_description(u) if lesion_text == "structured" or not u.text else u.text, NodeType.LESION) for u in units
    ]
    organ_nodes: dict[str, int] = {}
    subloc_nodes: dict[tuple[str, str], int] = {}
    for li, unit in zip(lesion_idx, units):
        if unit.organ not in organ_nodes:
            organ_nodes[unit.organ] = add(organ_text(unit.organ), NodeType.ORGAN)
        o = organ_nodes[unit.organ]
        link(li, o, Rel.LESION_TO_ORGAN, Rel.ORGAN_TO_LESION)
        for sub in unit.sub_location:
            key = (unit.organ, sub)
            if key not in subloc_nodes:
                subloc_nodes[key] = add(f"{sub} of the {organ_text(unit.organ)}", NodeType.SUB_LOCATION)
                link(o, subloc_nodes[key], Rel.ORGAN_CONTAINS, Rel.PART_OF_ORGAN)
            link(li, subloc_nodes[key], Rel.LESION_TO_SUBLOC, Rel.SUBLOC_TO_LESION)
        attrs = [
            size_text(unit.size_mm) if unit.size_mm else "",
            attenuation_text(unit),
            unit.enhancement or "",
            unit.lesion_type or "",
        ]
        for a in attrs:
            if a:
                link(li, add(a, NodeType.ATTRIBUTE), Rel.LESION_TO_ATTR, Rel.ATTR_TO_LESION)
    for a in range(len(units)):
        for b in range(a + 1, len(units)):
            if same_organ(units[a].organ, units[b].organ):
                link(lesion_idx[a], lesion_idx[b], Rel.SAME_ORGAN, Rel.SAME_ORGAN)
    for v in range(len(texts)):
        edges.append((v, v, int(Rel.SELF)))
    e = torch.tensor(edges, dtype=torch.long).reshape(-1, 3)
    return LesionGraph(
        node_texts=texts,
        node_types=torch.tensor(types, dtype=torch.long),
        edge_index=e[:, :2].t().contiguous(),
        edge_type=e[:, 2].contiguous(),
        lesion_nodes=torch.tensor(lesion_idx, dtype=torch.long),
        lesions=[lesion_target(u) for u in units],
    )
