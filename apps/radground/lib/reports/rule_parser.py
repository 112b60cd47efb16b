"""Rule-based report parser: the default backend (fast, deterministic, no model).

Per sentence it finds *mentions* (organs with side, sub-locations, sizes, HU, lesion nouns, density,
enhancement, count words, hedges, NegEx negation triggers), then:

1. groups lesion nouns: a second noun joined by an interpretive phrase ("lesion, likely a cyst",
   "mass suspicious for RCC") describes the same lesion; one after "and", ";", "," starts a new one;
2. gives every group the text segment between separators, and the mentions in it;
3. resolves the organ (explicit word > organ implied by the sub-location > the previous lesion
   in the sentence > the section header / previous sentence of the same section);
4. splits a plural group into one unit per lesion when per-lesion data is listed ("two lesions in
   segments VI and VII measuring 12 and 18 mm" -> two units, paired in order, i.e. "respectively").

Conventions:

* ``count``: a unit stands for one lesion unless the text gives a number without per-lesion data
  ("two cysts" -> count=2) or a vague plural ("multiple", "several", "innumerable", or a plural
  noun alone) -> count=2 with ``count_is_lower_bound=True`` ("at least two"). A plural over both
  kidneys ("bilateral renal cysts") gives one unit per side, count=1 with the lower-bound flag.
  Negated units have count=0.
* Negation (NegEx, Chapman 2001): pre-triggers ("no", "without", "no evidence of", "negative for",
  ...) negate lesion nouns up to PRE_WINDOW words later, post-triggers ("is no longer seen") those up
  to POST_WINDOW words before; scope ends at termination words ("but", "however", "which", ";") or at a
  measured size. Pseudo-triggers ("no change", "cannot be excluded") are masked first, so a hedged
  finding stays positive (``hedged=True``). "cyst without enhancement" is not negated: the trigger
  follows the noun, and "without enhancement" becomes ``enhancement='non-enhancing'``.
* A negated lesion noun gives a ``negated=True`` unit per organ named (an unsided "renal" or "the
  kidneys" -> both kidneys; none if no organ is known at all).
* Sentence kind: any positive unit -> FINDING; else a normal statement ("normal in size without
  focal lesion") -> NORMAL; else a negated unit or negation trigger -> NEGATIVE; else NON_DIAGNOSTIC
  (headers, technique, history, comparison, recommendations, and organ statements without a lesion
  such as "mild steatosis"). Sentences in technique/history/comparison sections and recommendation
  sentences give no units.
* Impression: its lesion units are parsed like findings, and flagged ``restates=True`` when a
  findings unit of the same organ came before (so ``ParsedReport.findings`` lists each lesion
  once); an impression-only lesion stays a finding.
* Organ words in a leading region label ("Kidneys and ureters: ...") are context, not the lesion's
  organ; the organ "unknown" is used for a positive lesion whose organ cannot be inferred at all.
* Liver lobes named together with a segment ("right hepatic lobe (segment VII)") are dropped in
  favour of the segment.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Optional

from lib.reports import vocabulary as V
from lib.reports.measurements import HUMention, SizeMention, find_hu, find_sizes
from lib.reports.schema import LesionUnit, ParsedReport, Sentence, SentenceKind
from lib.reports.sentences import NON_DIAGNOSTIC_SECTIONS, normalize, split_sentences

_WORD_RE = re.compile(r"\w+")
_LESION_FAMILIES = {"liver", "kidney", "pancreas", "spleen", "adrenal", "gallbladder"}
_GENERIC_TYPES = {"lesion", "mass", "nodule", "tumor", "neoplasm", "malignancy"}
_SIDE_BEFORE_RE = re.compile(
    r"\b(left|right|bilateral|both|lt|rt)\b(?:[\s-]+sided)?(?:[\s-]+\w+){0,3}?[\s-]*$", re.I
)
_EACH_RE = re.compile(r"\b(?:each|both|all|respectively)\b", re.I)


@dataclass
class _Organ:
    start: int
    end: int
    family: str
    side: Optional[str]  # left / right / bilateral / None
    relational: bool  # a neighbour ("abutting the liver") or a region label ("Kidneys and ureters: ..."),
    header: bool = False  # inside the region label at the sentence start

    def key(self) -> str:
        return V.organ_key(self.family, self.side if self.side in ("left", "right") else None)


@dataclass
class _Anchor:
    start: int
    end: int
    type: str
    density: Optional[str]
    plural: bool
    negated: bool = False


@dataclass
class _Sub:
    pos: int
    family: str
    names: list[str]


@dataclass
class _Group:
    anchors: list[_Anchor]
    seg_start: int = 0
    seg_end: int = 0

    @property
    def head(self) -> _Anchor:
        return self.anchors[0]


@dataclass
class _Context:
    """What earlier text tells about the current sentence (section header, previous organ)."""

    section: str = ""
    section_organ: Optional[str] = None
    section_subs: list[_Sub] = field(default_factory=list)
    prev_organ: Optional[str] = None


@dataclass
class _Mentions:
    text: str
    organs: list[_Organ]
    anchors: list[_Anchor]
    subs: list[_Sub]
    sizes: list[SizeMention]
    hus: list[HUMention]
    masks: list[tuple[int, int]]


def _words_between(text: str, a: int, b: int) -> int:
    return len(_WORD_RE.findall(text, a, b)) if b > a else 0


def _side_before(text: str, start: int) -> Optional[str]:
    """'left' in "left kidney", "left-sided renal", "right upper pole renal" (<= 3 words before)."""
    m = _SIDE_BEFORE_RE.search(text[max(0, start - 40) : start])
    return V.side_word(m.group(1)) if m else None


_LABEL_RE = re.compile(r"\s*[A-Za-z][A-Za-z /&,()'-]{0,48}?:(?=\s|$)")


def _find_organs(t: str) -> list[_Organ]:
    """Organ words with side; those in a leading region label count as context, not as the organ."""
    out = []
    label = _LABEL_RE.match(t)
    label_end = label.end() if label else 0
    for m in V.ORGAN_RE.finditer(t):
        fam = V.ORGAN_PATTERNS[int(m.lastgroup[1:])][1]
        side = None
        if fam in V.LATERAL_FAMILIES:
            side = _side_before(t, m.start())
            word = m.group(0).lower()
            if side is None and word.endswith("s") and fam == "kidney":
                side = "bilateral"  # "the kidneys"
        in_label = m.end() <= label_end
        rel = in_label or bool(V.RELATIONAL_RE.search(t[max(0, m.start() - 40) : m.start()]))
        out.append(_Organ(m.start(), m.end(), fam, side, rel, in_label))
    return out


def _find_subs(t: str) -> tuple[list[_Sub], list[tuple[int, int]]]:
    subs: list[_Sub] = []
    masks: list[tuple[int, int]] = []
    for m in V.LIVER_SEGMENT_RE.finditer(t):
        names = V.liver_segments(m.group(1))
        if names:
            subs.append(_Sub(m.start(), "liver", names))
            masks.append((m.start(1), m.end(1)))
    for m in V.LIVER_LOBE_RE.finditer(t):
        subs.append(_Sub(m.start(), "liver", ["segment I" if m.group(2) else f"{m.group(1).lower()} lobe"]))
    for pos, names in V.kidney_parts(t):
        subs.append(_Sub(pos, "kidney", names))
    for m in V.PANCREAS_PART_RE.finditer(t):
        explicit = bool(V.PANCREAS_EXPLICIT_PART_RE.search(t, max(0, m.start() - 12), min(len(t), m.end() + 22)))
        subs.append(_Sub(m.start(), "pancreas" if explicit else "pancreas?", [V.pancreas_part(m.group(1))]))
    subs.sort(key=lambda s: s.pos)
    return subs, masks


def _find_anchors(t: str) -> list[_Anchor]:
    out = []
    for m in V.LESION_RE.finditer(t):
        typ, dens = V.lesion_type_of(m)
        out.append(_Anchor(m.start(), m.end(), typ, dens, bool(V.PLURAL_RE.search(m.group(0)))))
    for m in V.WEAK_LESION_RE.finditer(t):
        before = t[max(0, m.start() - 40) : m.start()]
        if re.search(r"(?:" + V.DENSITY_RE.pattern + "|" + V.ENHANCEMENT_RE.pattern + r")(?:[\s,-]+\w+){0,1}[\s,-]*$", before, re.I):
            out.append(_Anchor(m.start(), m.end(), "lesion", None, bool(V.PLURAL_RE.search(m.group(0)))))
    out.sort(key=lambda a: a.start)
    # drop anchors nested in a longer one (e.g. 'carcinoma' inside 'renal cell carcinoma')
    kept: list[_Anchor] = []
    for a in out:
        if kept and a.start < kept[-1].end:
            continue
        kept.append(a)
    return kept


def _spans(rx: re.Pattern, t: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in rx.finditer(t)]


def _overlaps(s: int, e: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < b and e > a for a, b in spans)


def _mark_negation(t: str, anchors: list[_Anchor], sizes: list[SizeMention]) -> tuple[bool, bool]:
    """Set ``negated`` on anchors in a negation scope. Returns (any trigger, any normal word).

    Word distances use a prefix index and triggers are looked up by bisection, so the cost stays
    near-linear even for text made of nothing but triggers.
    """
    pseudo = _spans(V.PSEUDO_RE, t)
    pre = [(s, e) for s, e in _spans(V.PRE_NEG_RE, t) if not _overlaps_sorted(s, e, pseudo)]
    post = [(s, e) for s, e in _spans(V.POST_NEG_RE, t) if not _overlaps_sorted(s, e, pseudo)]
    # a post-trigger also matches pre patterns ("not seen" contains "not"): keep it post only
    pre = [(s, e) for s, e in pre if not _overlaps_sorted(s, e, post)]
    terms = sorted([s for s, e in _spans(V.TERMINATION_RE, t)] + [z.start for z in sizes if not z.prior])
    word_starts = [m.start() for m in _WORD_RE.finditer(t)]

    def words(a: int, b: int) -> int:
        return bisect.bisect_left(word_starts, b) - bisect.bisect_left(word_starts, a)

    def blocked(a: int, b: int) -> bool:  # a termination term in [a, b)
        i = bisect.bisect_left(terms, a)
        return i < len(terms) and terms[i] < b

    pre_ends = [e for _, e in pre]
    post_starts = [s for s, _ in post]
    for a in anchors:
        # nearest pre-trigger ending before the anchor: a farther one is blocked whenever it is
        i = bisect.bisect_right(pre_ends, a.start) - 1
        if i >= 0:
            e = pre_ends[i]
            if words(e, a.start) <= V.PRE_WINDOW and not blocked(e, a.start):
                a.negated = True
        j = bisect.bisect_left(post_starts, a.end)
        if j < len(post_starts):
            s0 = post_starts[j]
            if words(a.end, s0) <= V.POST_WINDOW and not blocked(a.end, s0):
                a.negated = True
    normal = any(not _overlaps_sorted(s, e, pseudo) for s, e in _spans(V.NORMAL_RE, t))
    return bool(pre or post), normal


def _overlaps_sorted(s: int, e: int, spans: list[tuple[int, int]]) -> bool:
    """Does [s, e) overlap one of the sorted, non-overlapping ``spans``?"""
    i = bisect.bisect_right(spans, (s, float("inf"))) - 1
    for k in (i, i + 1):
        if 0 <= k < len(spans) and s < spans[k][1] and e > spans[k][0]:
            return True
    return False


def _organ_modifier(t: str, a: _Anchor, organs: list[_Organ]) -> Optional[_Organ]:
    """The organ word directly qualifying a lesion noun ("hepatic metastases", "renal cyst")."""
    best = None
    for o in organs:
        if o.end <= a.start and a.start - o.end <= 40 and not o.relational and _words_between(t, o.end, a.start) <= 2:
            if not re.search(r"[,;:.()]", t[o.end : a.start]):
                best = o
    return best


def _group_anchors(t: str, anchors: list[_Anchor], organs: list[_Organ] = ()) -> list[_Group]:
    groups: list[_Group] = []
    for a in anchors:
        if groups:
            prev = groups[-1].anchors[-1]
            between = t[prev.end : a.start]
            mod = _organ_modifier(t, a, organs)
            seen_families = {o.family for o in organs if o.start < prev.end}
            if a.negated != groups[-1].head.negated:
                same = False
            elif mod is not None and mod.start >= prev.end and seen_families and mod.family not in seen_families:
                same = False  # "pancreatic mass with hepatic metastases": another organ, another lesion
            elif V.STRONG_SEPARATOR_RE.search(between):
                same = False
            elif V.INTERPRETIVE_RE.search(between) or V.HEDGE_RE.search(between):
                same = True
            elif V.WEAK_SEPARATOR_RE.search(between):
                same = False
            else:
                same = True
            if same:
                groups[-1].anchors.append(a)
                continue
        groups.append(_Group([a]))
    # segments: split at the last separator between consecutive groups
    for i, g in enumerate(groups):
        g.seg_start = 0 if i == 0 else groups[i - 1].seg_end
        if i + 1 < len(groups):
            lo, hi = g.anchors[-1].end, groups[i + 1].head.start
            between = t[lo:hi]
            cut = None
            for rx in (V.STRONG_SEPARATOR_RE, V.WEAK_SEPARATOR_RE):
                ms = list(rx.finditer(between))
                if ms:
                    cut = lo + ms[-1].end()
                    break
            if cut is None:
                mod = _organ_modifier(t, groups[i + 1].head, organs)
                cut = mod.start if mod is not None and mod.start >= lo else hi
            g.seg_end = cut
        else:
            g.seg_end = len(t)
    return groups


def _in(pos: int, g: _Group) -> bool:
    return g.seg_start <= pos < g.seg_end


def _count_of(t: str, g: _Group, m: _Mentions) -> tuple[Optional[int], bool]:
    """(explicit count, vague) from count words before the head noun in the group's segment."""
    head = g.head
    best = None
    taken = None
    # a count word stands within a few words of its noun: look only at the last 60 characters
    for cm in V.COUNT_RE.finditer(t, max(g.seg_start, head.start - 60), head.start):
        if _words_between(t, cm.end(), head.start) > 4:
            continue
        if taken is None:
            taken = sorted([(z.start, z.end) for z in m.sizes] + m.masks + [(h.start, h.end) for h in m.hus])
        if any(cm.start() < b and cm.end() > a for a, b in taken):
            continue
        best = cm
    if best is None:
        return None, False
    if best.group(1):
        return None, True
    if best.group(2):
        return V.NUMBER_WORDS[best.group(2).lower()], False
    n = int(best.group(3))
    return (n, False) if 1 <= n <= 50 else (None, False)


def _nearest(items, pos: int):
    return min(items, key=lambda x: abs(x.start - pos)) if items else None


def _side_in_segment(t: str, g: _Group) -> Optional[str]:
    seg = t[g.seg_start : g.seg_end]
    masked = V.NON_KIDNEY_SIDE_RE.sub(lambda mm: " " * len(mm.group(0)), seg)
    sides = {V.side_word(x.group(1)) for x in V.SIDE_RE.finditer(masked)}
    sides.discard(None)
    if sides == {"left"} or sides == {"right"}:
        return sides.pop()
    if "bilateral" in sides or sides == {"left", "right"}:
        return "bilateral"
    return None


def _nearest_side(t: str, g: _Group, pos: int) -> Optional[str]:
    """'left'/'right' written nearest to ``pos`` in the group's segment (not a liver lobe's side)."""
    seg = t[g.seg_start : g.seg_end]
    masked = V.NON_KIDNEY_SIDE_RE.sub(lambda mm: " " * len(mm.group(0)), seg)
    best, dist = None, None
    for x in V.SIDE_RE.finditer(masked):
        side = V.side_word(x.group(1))
        if side not in ("left", "right"):
            continue
        d = abs(g.seg_start + x.start() - pos)
        if dist is None or d < dist:
            best, dist = side, d
    return best


def _resolve_organ(t: str, g: _Group, m: _Mentions, inherited: Optional[str], ctx: _Context) -> tuple[str, Optional[str]]:
    """(organ key, side) of a group; side 'bilateral' asks the caller to emit both kidneys."""
    organs = [o for o in m.organs if _in(o.start, g)]
    direct = [o for o in organs if not o.relational]
    subs = [s for s in m.subs if _in(s.pos, g) and s.family in ("liver", "kidney", "pancreas")]
    implied = subs[0].family if subs else None
    if direct:
        o = _nearest(direct, g.head.start)
        side = o.side
        if o.family in V.LATERAL_FAMILIES and side in (None, "bilateral"):
            side = _side_in_segment(t, g) or side
        return V.organ_key(o.family, side if side in ("left", "right") else None), side
    candidates = [c for c in (inherited, ctx.section_organ, ctx.prev_organ) if c]
    if implied:
        candidates = [c for c in candidates if V.organ_family(c) == implied] or [implied]
    fam_key = _pick(candidates)
    if fam_key is None and organs:
        fam_key = _nearest(organs, g.head.start).key()
    if fam_key is None:
        return "unknown", None
    fam = V.organ_family(fam_key)
    if fam in V.LATERAL_FAMILIES:
        side = _side_in_segment(t, g)
        if side == "bilateral":
            return V.organ_key(fam, None), "bilateral"
        if side:
            return V.organ_key(fam, side), side
    return fam_key, None


def _organ_keys(organs: list[_Organ], units: list[LesionUnit]) -> list[str]:
    """Organs a sentence speaks of: the units' organs first, then other organ words.

    A plural or unsided kidney word ("Kidneys: ...", "renal cell carcinoma") adds nothing when a
    unit already names a sided kidney; "the kidneys are normal" gives both sides.
    """
    keys = [u.organ for u in units if u.organ != "unknown"]
    keys = list(dict.fromkeys(keys))
    covered = {V.organ_family(k) for k in keys}
    if keys or any(not o.header for o in organs):
        organs = [o for o in organs if not o.header]  # the region label only when nothing else
    for o in organs:
        if o.family in V.LATERAL_FAMILIES:
            if o.side in ("left", "right"):
                new = [o.key()]
            elif o.family in covered:
                new = []
            elif o.side == "bilateral":
                new = list(V.LATERAL_FAMILIES[o.family][:2])
            else:
                new = [o.key()]
        else:
            new = [o.key()]
        keys += [k for k in new if k not in keys]
    for fam, (left, right, unknown) in V.LATERAL_FAMILIES.items():
        if unknown in keys and (left in keys or right in keys):
            keys.remove(unknown)
    return keys


#: Sections that summarise the findings: their lesion units restate earlier ones.
RESTATING_SECTIONS = frozenset({"impression"})


def restates_earlier(u: LesionUnit, earlier: list[LesionUnit]) -> bool:
    """An impression unit restates a findings unit of the same organ (kidney side may be unstated)."""
    for e in earlier:
        if e.negated or e.restates:
            continue
        if e.organ == u.organ or (
            V.organ_family(e.organ) == V.organ_family(u.organ)
            and V.organ_family(u.organ) in V.LATERAL_FAMILIES
            and V.organ_key(V.organ_family(u.organ), None) in (u.organ, e.organ)
        ):
            return True
    return False


def _both_sides(keys: list[str]) -> list[str]:
    out: list[str] = []
    for k in keys:
        fam = V.organ_family(k)
        if fam in V.LATERAL_FAMILIES and k == V.LATERAL_FAMILIES[fam][2] and fam == "kidney":
            new = list(V.LATERAL_FAMILIES[fam][:2])
        else:
            new = [k]
        out += [x for x in new if x not in out]
    return out


def _pick(candidates: list[str]) -> Optional[str]:
    """First candidate, but a sided kidney of the same family beats an unsided one."""
    if not candidates:
        return None
    first = candidates[0]
    fam = V.organ_family(first)
    if fam in V.LATERAL_FAMILIES and first == V.organ_key(fam, None):
        for c in candidates[1:]:
            if V.organ_family(c) == fam and c != first:
                return c
    return first


def _subs_for(organ: str, g: _Group, m: _Mentions, ctx: _Context, organ_from_section: bool) -> list[_Sub]:
    """Sub-locations of the group's organ in its segment (else from the section header).

    A liver lobe named together with a segment ("posterior right hepatic lobe (segment VII)") only
    paraphrases the segment, so the lobe is dropped.
    """
    fam = V.organ_family(organ)
    out = []
    for s in m.subs:
        if not _in(s.pos, g):
            continue
        if s.family == fam or (fam == "pancreas" and s.family == "pancreas?"):
            out.append(s)
    if not out and organ_from_section:
        out = [s for s in ctx.section_subs if s.family == fam or (fam == "pancreas" and s.family == "pancreas?")]
    if fam == "liver" and any(n.startswith("segment") for s in out for n in s.names):
        out = [_Sub(s.pos, s.family, [n for n in s.names if n.startswith("segment")]) for s in out]
        out = [s for s in out if s.names]
    return out


def _first_match_value(rx: re.Pattern, t: str, lo: int, hi: int, near: int, conv) -> Optional[str]:
    ms = list(rx.finditer(t, lo, hi))
    if not ms:
        return None
    return conv(min(ms, key=lambda x: abs(x.start() - near)))


class RuleParser:
    """Report text -> :class:`ParsedReport` with hand-written rules (see module docstring)."""

    name = "rules"

    def parse(self, text: str, sentences: Optional[list[Sentence]] = None) -> ParsedReport:
        sentences = split_sentences(text) if sentences is None else sentences
        lesions: list[LesionUnit] = []
        ctx = _Context()
        out_sentences = []
        for sent in sentences:
            if sent.section != ctx.section:
                ctx = self._section_context(sent.section)
            units, kind, organs = self.parse_sentence(sent, ctx)
            out_sentences.append(sent.model_copy(update={"kind": kind, "organs": organs}))
            if sent.section in RESTATING_SECTIONS:
                for u in units:
                    u.restates = not u.negated and restates_earlier(u, lesions)
            lesions.extend(units)
        return ParsedReport(text=text, sentences=out_sentences, lesions=lesions, parser=self.name)

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _section_context(section: str) -> _Context:
        ctx = _Context(section=section)
        if section:
            organs = _find_organs(section)
            if organs:
                ctx.section_organ = organs[0].key()
            ctx.section_subs, _ = _find_subs(section)
        return ctx

    @staticmethod
    def mentions(text: str) -> _Mentions:
        t = normalize(text)
        hus = find_hu(t)
        subs, seg_masks = _find_subs(t)
        masks = seg_masks + [(h.start, h.end) for h in hus]
        sizes = find_sizes(t, masks)
        return _Mentions(t, _find_organs(t), _find_anchors(t), subs, sizes, hus, masks)

    def parse_sentence(self, sent: Sentence, ctx: _Context) -> tuple[list[LesionUnit], SentenceKind, list[str]]:
        m = self.mentions(sent.text)
        t = m.text
        any_trigger, normal = _mark_negation(t, m.anchors, m.sizes)
        if ctx.section in NON_DIAGNOSTIC_SECTIONS or V.RECOMMENDATION_RE.search(t):
            return [], SentenceKind.NON_DIAGNOSTIC, _organ_keys(m.organs, [])

        groups = _group_anchors(t, m.anchors, m.organs)
        groups = self._drop_enumeration_heads(t, groups, m)
        units: list[LesionUnit] = []
        inherited: Optional[str] = None
        for g in groups:
            new = self._units_for_group(sent, g, m, inherited, ctx)
            if new:
                pos = [u for u in new if not u.negated]
                if pos:
                    inherited = pos[-1].organ
            units.extend(new)

        organ_keys = _organ_keys(m.organs, units)
        if not organ_keys and ctx.section_organ:
            organ_keys = [ctx.section_organ]

        if any(not u.negated for u in units):
            kind = SentenceKind.FINDING
        elif normal:
            kind = SentenceKind.NORMAL  # "normal in size ... without focal lesion"
        elif units or any_trigger:
            kind = SentenceKind.NEGATIVE
        else:
            kind = SentenceKind.NON_DIAGNOSTIC
        if kind in (SentenceKind.NORMAL, SentenceKind.NEGATIVE):
            # a statement about "the kidneys" / "renal" without a side holds for both
            organ_keys = _both_sides(organ_keys)
        # carry the organ to the next sentence of this section
        last = [u.organ for u in units if u.organ != "unknown"]
        if last:
            ctx.prev_organ = last[-1]
        elif organ_keys:
            ctx.prev_organ = organ_keys[-1]
        return units, kind, organ_keys

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _drop_enumeration_heads(t: str, groups: list[_Group], m: _Mentions) -> list[_Group]:
        """'Two hepatic lesions: a 12 mm cyst in II and ...' -> the summary noun is not a lesion."""
        out = []
        for i, g in enumerate(groups):
            if i + 1 < len(groups) and g.head.plural and not g.head.negated:
                has_data = any(_in(z.start, g) and not z.prior for z in m.sizes) or any(
                    _in(s.pos, g) for s in m.subs
                )
                between = t[g.anchors[-1].end : groups[i + 1].head.start]
                if not has_data and V.ENUMERATION_RE.search(between):
                    # hand the segment start to the next group so it sees the organ words
                    groups[i + 1].seg_start = g.seg_start
                    continue
            out.append(g)
        return out

    def _units_for_group(
        self, sent: Sentence, g: _Group, m: _Mentions, inherited: Optional[str], ctx: _Context
    ) -> list[LesionUnit]:
        t = m.text
        head = g.head
        base = dict(sentence_index=sent.index, span=tuple(sent.span), text=sent.text)
        if head.negated:
            organs = []
            for o in m.organs:
                if o.relational:
                    continue
                if o.side == "bilateral" and o.family in V.LATERAL_FAMILIES:
                    ks = [V.organ_key(o.family, None)]
                else:
                    ks = [o.key()]
                organs += [k for k in ks if k not in organs]
            if not organs:
                implied = [s.family for s in m.subs if s.family in ("liver", "kidney", "pancreas") and _in(s.pos, g)]
                prev = ctx.prev_organ if ctx.prev_organ and V.organ_family(ctx.prev_organ) in _LESION_FAMILIES else None
                fallback = ctx.section_organ or prev
                organs = [implied[0]] if implied else ([fallback] if fallback else [])
            organs = _both_sides(organs)  # "no renal mass": neither kidney has one
            typ = self._type(g)
            return [
                LesionUnit(organ=o, lesion_type=typ, negated=True, count=0, **base) for o in organs
            ]

        organ, side = _resolve_organ(t, g, m, inherited, ctx)
        organ_from_section = ctx.section_organ is not None and V.organ_family(organ) == V.organ_family(ctx.section_organ)
        subs = _subs_for(organ, g, m, ctx, organ_from_section)
        sizes = [z for z in m.sizes if _in(z.start, g) and not z.prior]
        hus = [h for h in m.hus if _in(h.start, g)]
        density = _first_match_value(V.DENSITY_RE, t, g.seg_start, g.seg_end, head.start, V.density_of)
        if density is None:
            density = next((a.density for a in g.anchors if a.density), None)
        enhancement = _first_match_value(V.ENHANCEMENT_RE, t, g.seg_start, g.seg_end, head.start, V.enhancement_of)
        hedged = bool(V.HEDGE_RE.search(t, g.seg_start, g.seg_end))
        typ = self._type(g)
        n_explicit, vague = _count_of(t, g, m)
        if vague and not head.plural:
            vague = False  # "additional 5 mm cyst", "another lesion": one lesion
        plural = head.plural or vague or (n_explicit is not None and n_explicit >= 2)
        # "Right kidney 1.4 cm and left kidney 2.2 cm cysts": one organ per listed lesion
        direct = [o for o in m.organs if _in(o.start, g) and not o.relational and o.side != "bilateral"]
        direct_keys = list(dict.fromkeys(o.key() for o in direct))

        sub_names: list[str] = []
        sub_pos: list[int] = []
        for s in subs:
            for x in s.names:
                if x not in sub_names:
                    sub_names.append(x)
                    sub_pos.append(s.pos)
        common = dict(density=density, enhancement=enhancement, lesion_type=typ, hedged=hedged, **base)

        specs: list[dict] = []
        if not plural:
            z = _nearest(sizes, head.start)
            h = _nearest(hus, head.start)
            specs.append(dict(sub_location=sub_names, size_mm=z.dims_mm if z else [], hu=h.value if h else None, count=1))
        else:
            ks, kz = len(sub_names), len(sizes)
            k = max(ks if ks > 1 else 0, kz if kz > 1 else 0)
            if k >= 2:
                shared_size = kz == 1 and bool(_EACH_RE.search(t, g.seg_start, g.seg_end))
                for i in range(k):
                    if ks == k:
                        sl = [sub_names[i]]
                    elif ks == 1:
                        sl = list(sub_names)
                    else:
                        sl = []
                    if kz == k:
                        sz = sizes[i].dims_mm
                    elif shared_size:
                        sz = sizes[0].dims_mm
                    else:
                        sz = []
                    hu = hus[i].value if len(hus) == k else (hus[0].value if len(hus) == 1 else None)
                    spec = dict(sub_location=sl, size_mm=sz, hu=hu, count=1)
                    if len(direct_keys) == k:
                        spec["organ"] = direct_keys[i]
                    elif side == "bilateral":
                        # "8 mm in the right upper pole and 30 mm in the left interpolar region"
                        where = sub_pos[i] if ks == k else sizes[i].start if kz == k else None
                        lr = _nearest_side(t, g, where) if where is not None else None
                        if lr:
                            spec["organ"] = V.organ_key(V.organ_family(organ), lr)
                    specs.append(spec)
                if n_explicit is not None and n_explicit > k:
                    specs[-1]["count"] += n_explicit - k
            else:
                z = _nearest(sizes, head.start)
                h = _nearest(hus, head.start)
                specs.append(
                    dict(
                        sub_location=sub_names,
                        size_mm=z.dims_mm if z else [],
                        hu=h.value if h else None,
                        count=n_explicit if n_explicit is not None else 2,
                        count_is_lower_bound=n_explicit is None,
                    )
                )
        organs = [organ]
        fam = V.organ_family(organ)
        if side == "bilateral" and fam in V.LATERAL_FAMILIES and not all("organ" in sp for sp in specs):
            # a plural over both kidneys: at least one lesion on each side
            specs = [dict(sp, count=1, count_is_lower_bound=True) if sp["count"] >= 2 else sp for sp in specs]
            organs = list(V.LATERAL_FAMILIES[fam][:2])
            sp = specs[0]
            where = sub_pos[0] if sub_pos else (sizes[0].start if sizes else None)
            lr = _nearest_side(t, g, where) if len(specs) == 1 and where is not None else None
            if lr:
                # "bilateral renal cysts, the largest in the right upper pole measuring 4.2 cm":
                # the measured one is on the right; the left gets a unit without the data
                other = "left" if lr == "right" else "right"
                bare = dict(sp, sub_location=[], size_mm=[], hu=None)
                specs = [dict(sp, organ=V.organ_key(fam, lr)), dict(bare, organ=V.organ_key(fam, other))]
                specs.sort(key=lambda x: x["organ"])
                organs = [organ]
        units = []
        for o in organs:
            for sp in specs:
                sp = {"organ": o, **sp}
                units.append(LesionUnit(**sp, **common).with_volume())
        return units

    @staticmethod
    def _type(g: _Group) -> str:
        specific = [a.type for a in g.anchors if a.type not in _GENERIC_TYPES]
        return specific[0] if specific else g.head.type


def parse_rules(text: str) -> ParsedReport:
    """Parse ``text`` with the rule backend (no input validation; see :func:`lib.reports.parse_report`)."""
    return RuleParser().parse(text)
