"""Structured form of a radiology report: sentences and lesion units.

A *lesion unit* is GLeVE's atomic reasoning unit (000 §2.2): one described lesion with its organ
attribution, sub-location, size and HU. Every grounding model consumes this structure, and the
LLM parser is asked to emit exactly this JSON schema, so it is a pydantic model.
"""
from __future__ import annotations

import math
from enum import Enum
from typing import Optional

from pydantic import BaseModel, Field, field_validator


class SentenceKind(str, Enum):
    """What a sentence contributes to grounding."""

    FINDING = "finding"  # describes >= 1 present lesion: groundable
    NEGATIVE = "negative"  # explicit absence ("No pancreatic mass."): not groundable
    NORMAL = "normal"  # normal organ statement ("The spleen is unremarkable."): not groundable
    NON_DIAGNOSTIC = "non_diagnostic"  # technique, history, comparison, headers: not groundable


class LesionUnit(BaseModel):
    """One lesion description (or one explicitly negated finding)."""

    organ: str = Field(description="canonical organ key, e.g. liver, kidney_left, kidney_right, kidney, pancreas")
    sub_location: list[str] = Field(default_factory=list, description="e.g. ['segment VII'], ['lower pole'], ['head']")
    size_mm: list[float] = Field(default_factory=list, description="1-3 dimensions in millimetres")
    volume_ml: Optional[float] = Field(default=None, description="ellipsoid volume estimate from size_mm")
    hu: Optional[float] = Field(default=None, description="attenuation in Hounsfield units if reported")
    density: Optional[str] = Field(default=None, description="hypodense, hyperdense, isodense, cystic, ...")
    enhancement: Optional[str] = Field(default=None, description="enhancing, non-enhancing, rim-enhancing, ...")
    lesion_type: Optional[str] = Field(default=None, description="lesion, cyst, mass, nodule, metastasis, ...")
    negated: bool = False
    count: int = Field(default=1, ge=0, description="lesions this unit stands for (>1 when not split)")
    count_is_lower_bound: bool = Field(
        default=False, description="count is a minimum: 'multiple'/'several' cysts with no number give count=2"
    )
    hedged: bool = Field(default=False, description="stated with uncertainty ('likely', 'cannot exclude')")
    restates: bool = Field(
        default=False, description="repeats a lesion already described earlier (impression item): not a new lesion"
    )
    sentence_index: int = -1
    span: tuple[int, int] = (0, 0)
    text: str = ""

    @field_validator("size_mm")
    @classmethod
    def _positive_sizes(cls, v: list[float]) -> list[float]:
        if any((not math.isfinite(x)) or x <= 0 for x in v):
            raise ValueError("sizes must be positive finite millimetres")
        return v

    def with_volume(self) -> "LesionUnit":
        """Fill ``volume_ml`` from ``size_mm`` if it is missing."""
        if self.volume_ml is None and self.size_mm:
            self.volume_ml = ellipsoid_volume_ml(self.size_mm)
        return self


class Sentence(BaseModel):
    """A sentence of the report with its character span and role."""

    index: int
    text: str
    span: tuple[int, int]
    section: str = ""  # e.g. findings, impression, technique, or a region name
    kind: SentenceKind = SentenceKind.NON_DIAGNOSTIC
    organs: list[str] = Field(default_factory=list)
    region: Optional[str] = None  # Reg2RG chest region (lib.reports.regions); None for non-diagnostic text


class ParsedReport(BaseModel):
    """Output of every report parser backend."""

    text: str
    sentences: list[Sentence]
    lesions: list[LesionUnit]
    parser: str = "rules"

    @property
    def findings(self) -> list[LesionUnit]:
        """The groundable lesion units, one per described lesion (not negated, not a restatement)."""
        return [u for u in self.lesions if not u.negated and not u.restates]

    @property
    def groundable_sentences(self) -> list[Sentence]:
        return [s for s in self.sentences if s.kind == SentenceKind.FINDING]

    def region_sections(self, include_impression: bool = False) -> dict[str, list[Sentence]]:
        """Diagnostic sentences grouped by chest region, in report order (the per-region report of 004)."""
        out: dict[str, list[Sentence]] = {}
        for s in self.sentences:
            if s.region is None or s.kind == SentenceKind.NON_DIAGNOSTIC:
                continue
            if s.section == "impression" and not include_impression:
                continue
            out.setdefault(s.region, []).append(s)
        return out

    def region_text(self, region: str) -> str:
        """The findings text of one region, headings stripped (what Reg2RG writes for that region)."""
        return " ".join(strip_heading(s.text) for s in self.region_sections().get(region, []))


def strip_heading(text: str) -> str:
    """'Lungs: The lungs are clear.' -> 'The lungs are clear.' (only a short leading 'Heading:')."""
    head, sep, rest = text.partition(":")
    if sep and rest.strip() and len(head.split()) <= 5 and head.strip() and all(c.isalpha() or c in " /&-" for c in head.strip()):
        return rest.strip()
    return text


def ellipsoid_volume_ml(size_mm: list[float]) -> float:
    """Ellipsoid volume pi/6 * a*b*c in ml; missing axes take the mean of the given ones."""
    dims = [float(x) for x in size_mm if x > 0][:3]
    if not dims:
        raise ValueError("no size given")
    while len(dims) < 3:
        dims.append(sum(dims) / len(dims))
    return math.pi / 6.0 * dims[0] * dims[1] * dims[2] / 1000.0
