"""Sizes and Hounsfield units found in a clause, with positions, in millimetres and HU.

Sizes are read by a token scan rather than one large regex: numbers (with an optional unit) are
found once, then consecutive numbers are chained by what stands between them — ``x``/``by`` joins
dimensions ("3.2 x 2.1 cm"), ``-``/``to`` a range ("1.2-1.5 cm" -> the larger), ``and``/``,`` a list
("12 and 18 mm"). A number without its own unit takes the next unit to its right in its chain or
list ("3.2 x 2.1 cm" -> both cm; "1.1 cm and 2.3 cm, respectively"); a number that never gets a
unit is not a size, except in a parallel list written with one unit ("measuring 9 in the right
lower pole and 32 mm in the left"), where it takes the later unit. Dimensions are returned long
axis first. Sizes introduced by "previously" /
"prior" / "from" are marked ``prior`` so a parser can ignore them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_NUM_RE = re.compile(
    r"(?<![A-WYZa-wyz0-9_.])(\d{1,4}(?:\.\d+)?|\.\d+)"
    r"(?:\s?-?\s?(cm|mm|centimet(?:er|re)s?|millimet(?:er|re)s?)(?![A-Za-z]))?"
)
_X_GAP = re.compile(r"\s*(?:x|by|\*)\s*", re.I)
_RANGE_GAP = re.compile(r"\s*(?:-|to|through)\s*", re.I)
_LIST_GAP = re.compile(r"\s*(?:,\s*and|,|and|&)\s*", re.I)
_PRIOR_BEFORE = re.compile(
    r"(?:previously|prior|previous|formerly|was|were|baseline|compared\s+(?:with|to)|from|versus|vs\.?)"
    r"(?:\s+(?:measur\w*|of|at|size|approximately|approx\.?|about|\())*[\s(:]*$",
    re.I,
)
_RANGING_BEFORE = re.compile(r"(?:rang\w*|varying|between)\s+(?:in\s+size\s+)?(?:from\s+)?$", re.I)
_FROM_BEFORE = re.compile(r"\bfrom\s*$", re.I)
_LIST_ITEM_BEFORE = re.compile(r"(?:\bmeasur\w*|[:,;])\s*$", re.I)
_IN_AFTER = re.compile(r"\s+(?:in|within|at)\s+(?:the\s+)?(?!\d)", re.I)
_COUNT_NOUN_AFTER = re.compile(r"\s+(?:in|within|at)\s+(?:the\s+)?(?:\w+\s+){0,2}(?:of\s+)?(?:cases|patients|\d)", re.I)

_HU_NUM = r"((?:minus\s+|-|\+)?\d{1,4}(?:\.\d+)?)"
_HU_UNIT = r"(?:hu|h\.u\.|hounsfield(?:\s+units?)?)(?![A-Za-z])"
_HU_RANGE_RE = re.compile(r"(?<![\w.])" + _HU_NUM + r"\s*(?:-|to)\s*" + _HU_NUM + r"\s*" + _HU_UNIT, re.I)
_HU_AFTER_RE = re.compile(r"(?<![\w.])" + _HU_NUM + r"\s*" + _HU_UNIT, re.I)
_HU_BEFORE_RE = re.compile(
    r"\b(?:hu|hounsfield\s+units?)\s*(?:(?:of|value\s+of|values\s+of|measuring|approximately|approx\.?|about|around|"
    r"=|:|~)\s*){0,2}" + _HU_NUM + r"(?![\d.])(?!\s?-?\s?(?:mm|cm|millimet|centimet))",
    re.I,
)


@dataclass
class SizeMention:
    start: int
    end: int
    dims_mm: list[float]
    prior: bool = False
    in_list: bool = False  # part of "12 and 18 mm" style list


@dataclass
class HUMention:
    start: int
    end: int
    value: float


@dataclass
class _Num:
    start: int
    end: int
    value: float
    unit: Optional[str]


def _to_mm(value: float, unit: str) -> float:
    u = unit.lower()
    factor = 10.0 if u.startswith("c") else 1.0
    return round(value * factor, 3)


def _masked(pos: int, masks: list[tuple[int, int]]) -> bool:
    return any(s <= pos < e for s, e in masks)


def _hu_value(tok: str) -> float:
    t = tok.lower().replace(" ", "")
    if t.startswith("minus"):
        return -float(t[5:])
    return float(t)


def find_hu(text: str) -> list[HUMention]:
    """HU values: '15 HU', 'HU 15', '(HU: -5)', 'attenuation of 15 Hounsfield units', '10-20 HU' (mean)."""
    out: list[HUMention] = []
    taken: list[tuple[int, int]] = []

    def free(s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in taken)

    for m in _HU_RANGE_RE.finditer(text):
        if free(m.start(), m.end()):
            out.append(HUMention(m.start(), m.end(), (_hu_value(m.group(1)) + _hu_value(m.group(2))) / 2.0))
            taken.append((m.start(), m.end()))
    for rx in (_HU_AFTER_RE, _HU_BEFORE_RE):
        for m in rx.finditer(text):
            if free(m.start(), m.end()):
                out.append(HUMention(m.start(), m.end(), _hu_value(m.group(1))))
                taken.append((m.start(), m.end()))
    out.sort(key=lambda h: h.start)
    return out


def find_sizes(text: str, masks: list[tuple[int, int]] = ()) -> list[SizeMention]:
    """Size mentions of ``text`` in order; numbers starting inside ``masks`` (HU, segments) are skipped."""
    nums = [
        _Num(m.start(), m.end(), float(m.group(1)), m.group(2))
        for m in _NUM_RE.finditer(text)
        if not _masked(m.start(), list(masks))
    ]
    # 1) chain numbers into groups (dimensions / ranges)
    groups: list[dict] = []
    i = 0
    while i < len(nums):
        g = {"nums": [nums[i]], "range": None, "start": nums[i].start, "end": nums[i].end}
        j = i
        while j + 1 < len(nums):
            gap = text[nums[j].end : nums[j + 1].start]
            if _X_GAP.fullmatch(gap) and len(g["nums"]) < 3 and g["range"] is None:
                g["nums"].append(nums[j + 1])
            elif _RANGE_GAP.fullmatch(gap) and len(g["nums"]) == 1 and g["range"] is None:
                g["range"] = nums[j + 1]
            else:
                break
            g["end"] = nums[j + 1].end
            j += 1
        groups.append(g)
        i = j + 1
    # 2) lists of groups ("12 and 18 mm") share a trailing unit
    lists: list[list[dict]] = []
    for g in groups:
        if lists:
            prev = lists[-1][-1]
            if _LIST_GAP.fullmatch(text[prev["end"] : g["start"]]):
                lists[-1].append(g)
                continue
        lists.append([g])
    # 3) parallel lists written with one unit: "9 in the right lower pole and 32 mm in the left ..."
    #    (a bare number followed by "in/within" takes the unit of a later "<n> <unit> in/within")
    unit_of: dict[int, str] = {}
    later_units: list[tuple[int, str]] = []
    for g in groups:
        members = g["nums"] + ([g["range"]] if g["range"] else [])
        u = next((n.unit for n in reversed(members) if n.unit), None)
        if u and _IN_AFTER.match(text, g["end"]):
            later_units.append((g["start"], u))
    for g in groups:
        members = g["nums"] + ([g["range"]] if g["range"] else [])
        if any(n.unit for n in members) or not _IN_AFTER.match(text, g["end"]):
            continue
        if _COUNT_NOUN_AFTER.match(text, g["end"]) or not _LIST_ITEM_BEFORE.search(text[max(0, g["start"] - 20) : g["start"]]):
            continue
        nxt = next((u for pos, u in later_units if pos > g["start"]), None)
        if nxt:
            unit_of[id(g)] = nxt
    out: list[SizeMention] = []
    for lst in lists:
        # unit of each group: its own last unit, else the next group's in the list
        units: list[Optional[str]] = []
        for g in lst:
            members = g["nums"] + ([g["range"]] if g["range"] else [])
            units.append(next((n.unit for n in reversed(members) if n.unit), None))
        for k in range(len(lst) - 2, -1, -1):
            if units[k] is None:
                units[k] = units[k + 1]
        units = [u or unit_of.get(id(g)) for u, g in zip(units, lst)]
        for g, unit in zip(lst, units):
            if unit is None:
                continue
            before = text[max(0, g["start"] - 40) : g["start"]]
            members = g["nums"]

            def mm(n: _Num) -> float:
                return _to_mm(n.value, n.unit or unit_after(n, members, unit))

            dims = [mm(n) for n in members]
            prior = False
            if g["range"] is not None:
                hi = _to_mm(g["range"].value, g["range"].unit or unit)
                if _FROM_BEFORE.search(before) and not _RANGING_BEFORE.search(before):
                    dims = [hi]  # "increased from 10 to 14 mm": the current size
                else:
                    dims = [max(dims[0], hi)]
            elif _PRIOR_BEFORE.search(before) and not _RANGING_BEFORE.search(before):
                prior = True
            if not all(0 < d < 1000 for d in dims):
                continue
            out.append(SizeMention(g["start"], g["end"], sorted(dims, reverse=True), prior, len(lst) > 1))
    return out


def unit_after(n: _Num, members: list[_Num], default: str) -> str:
    """Unit of the first member at or after ``n`` that has one (or the list's unit)."""
    seen = False
    for m in members:
        if m is n:
            seen = True
        if seen and m.unit:
            return m.unit
    return default
