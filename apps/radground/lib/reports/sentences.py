"""Split a report into sentences with exact character spans and the section each belongs to.

Grounding needs to point back into the report, so every :class:`Sentence` keeps ``span`` with
``report[start:end] == sentence.text``. The splitter is a single left-to-right scan (linear time,
no backtracking regex over the whole text) that knows the shapes CT reports take:

* section headers (``FINDINGS:``, ``IMPRESSION:``, ``TECHNIQUE: ...``) and region labels
  (``Liver: ...``, ``Right kidney: ...``) set ``section`` and stay inside the span of the sentence
  they start (a header alone on its line is a sentence of its own, kind NON_DIAGNOSTIC), so a
  sentence's text still names its organ; ``IMPRESSION: 1. ...`` gives the header its own sentence;
* numbered / bulleted items (``1. ...``, ``- ...``) start a new sentence, the marker is left out;
* a period ends a sentence only when followed by whitespace (so ``1.8 cm`` is safe) and not after a
  known abbreviation (``approx.``, ``e.g.``, ``Dr.``, ``vs.`` ...);
* a line break ends a sentence unless the next line continues it (starts lower-case or with a number
  while the previous line has no closing punctuation: a soft wrap);
* a region section lasts until the next header or blank line.

This matches the sentence convention of the synthetic reports (``lib.data.synthetic.sentences``),
so parsed sentence indices equal the truth indices there. Sentences with no letter or digit are
dropped. ``kind`` and ``organs`` are filled in by a parser.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from lib.reports.schema import Sentence

#: One-to-one character replacements applied before matching (offsets are unchanged).
_TRANSLATE = str.maketrans(
    {
        "\u2212": "-",  # minus sign
        "\u2013": "-",  # en dash
        "\u2014": "-",  # em dash
        "\u2010": "-",
        "\u2011": "-",
        "\u00d7": "x",  # multiplication sign
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\t": " ",
        "\u2019": "'",
    }
)


def normalize(text: str) -> str:
    """Same-length normalised copy of ``text`` (dashes, x-signs, odd spaces), for matching."""
    out = text.translate(_TRANSLATE)
    assert len(out) == len(text)
    return out


#: Tokens after which a period does not end a sentence (lower-case, without the final period).
ABBREVIATIONS: frozenset[str] = frozenset(
    {
        "approx", "apprx", "e.g", "eg", "i.e", "ie", "dr", "drs", "vs", "cf", "fig", "figs", "mr", "mrs", "ms",
        "prof", "st", "ca", "incl", "resp", "seg", "segs", "lt", "rt", "no", "nos", "pt", "pts", "hx", "est",
        "max", "min", "sr", "jr", "img", "ser", "vol", "al", "et", "a.m", "p.m", "etc",
    }
)
#: Of those, the ones that still end a sentence when a capitalised word follows ("... etc. The").
_SOFT_ABBREVIATIONS: frozenset[str] = frozenset(
    {"etc", "no", "nos", "min", "max", "est", "al", "a.m", "p.m", "ca", "pt", "pts", "hx", "incl", "resp", "vol",
     "sr", "jr", "et", "eg", "ie", "apprx", "approx"}
)

#: Headers that name a report section (left out of sentence spans). Value: canonical name.
MAJOR_SECTIONS: dict[str, str] = {
    "findings": "findings",
    "finding": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "assessment": "impression",
    "technique": "technique",
    "techniques": "technique",
    "protocol": "technique",
    "procedure": "technique",
    "contrast": "technique",
    "exam": "technique",
    "examination": "technique",
    "study": "technique",
    "dose": "technique",
    "history": "history",
    "clinical history": "history",
    "clinical information": "history",
    "clinical indication": "history",
    "clinical data": "history",
    "indication": "history",
    "indications": "history",
    "reason for exam": "history",
    "reason for examination": "history",
    "reason for study": "history",
    "comparison": "comparison",
    "comparisons": "comparison",
    "prior": "comparison",
    "recommendation": "recommendation",
    "recommendations": "recommendation",
    "addendum": "addendum",
    "report": "findings",
    "ct abdomen": "technique",
    "ct abdomen and pelvis": "technique",
}

#: Sections whose sentences are never groundable findings.
NON_DIAGNOSTIC_SECTIONS: frozenset[str] = frozenset({"technique", "history", "comparison", "recommendation"})

_HEADER_RE = re.compile(r"([A-Za-z][A-Za-z /&,()'-]{0,48}?)[ ]*:(?=[ \r\n]|$)")
_ENUM_RE = re.compile(r"(?:\(?\d{1,2}[.)]|[-*\u2022\u25cf\u25aa]|[a-z][.)])[ ]+")
_HAS_ALNUM = re.compile(r"[A-Za-z0-9]")


@dataclass
class _Chunk:
    """A run of report text between hard breaks (line breaks, items), with its section."""

    start: int
    end: int
    section: str
    item: bool  # starts a numbered/bulleted item


def _match_header(norm: str, pos: int, end: int, line_start: bool):
    """Return (canonical section or region name, is_major, end of header incl. colon) or None."""
    m = _HEADER_RE.match(norm, pos, end)
    if not m:
        return None
    name = " ".join(m.group(1).split()).strip(" -/&,").lower()
    if not name or len(name.split()) > 5:
        return None
    if name in MAJOR_SECTIONS:
        return MAJOR_SECTIONS[name], True, m.end()
    raw = m.group(1).strip()
    # Mid-line ("... normal. Spleen: normal."), only ALL-CAPS or short Title-case headers count.
    if not line_start and not ((raw.isupper() and len(raw) >= 3) or (raw[0].isupper() and len(name.split()) <= 3)):
        return None
    return name, False, m.end()


def _skip_spaces(norm: str, pos: int, end: int) -> int:
    while pos < end and norm[pos] in " \r\n":
        pos += 1
    return pos


def _is_enumerator(norm: str, start: int, end: int) -> bool:
    """'1. ' / '2) ' / '- ' / 'a) ' is an item marker ('1.8 cm' never matches: no space after '.')."""
    tok = norm[start:end].strip()
    if tok[0].isalpha():  # "a) " always, "b. " only before a capital
        return tok.endswith(")") or (end < len(norm) and norm[end].isupper())
    return True


def _chunks(norm: str) -> list[_Chunk]:
    """Cut the report into chunks at line breaks and items, tracking the current section."""
    chunks: list[_Chunk] = []
    major, region = "", ""
    n = len(norm)
    pos = 0
    cur: _Chunk | None = None
    prev_line_blank = True
    while pos <= n:
        nl = norm.find("\n", pos)
        line_end = n if nl < 0 else nl
        content_end = line_end
        while content_end > pos and norm[content_end - 1] in " \r":
            content_end -= 1
        p = _skip_spaces(norm, pos, content_end)
        if p >= content_end:  # blank line: closes the open chunk and the region section
            if cur is not None:
                chunks.append(cur)
                cur = None
            region = ""
            prev_line_blank = True
        else:
            item = False
            e = _ENUM_RE.match(norm, p, content_end)
            if e is not None and _is_enumerator(norm, p, e.end()):
                item = True
                p = _skip_spaces(norm, e.end(), content_end)
            start = p
            header_seen = False
            h = _match_header(norm, p, content_end, line_start=True)
            if h is not None:
                header_seen = True
                name, is_major, h_end = h
                if is_major:
                    major, region = name, ""
                    # a region label may follow on the same line: "FINDINGS: Liver: ..."
                    h2 = _match_header(norm, _skip_spaces(norm, h_end, content_end), content_end, True)
                    if h2 is not None and not h2[1]:
                        region = h2[0]
                else:
                    region = name
            section = region or major
            soft_wrap = (
                cur is not None
                and not header_seen
                and not item
                and not prev_line_blank
                and norm[cur.end - 1] not in ".!?:;"
                and (norm[start].islower() or norm[start].isdigit() or norm[start] in "(,")
            )
            if soft_wrap:
                cur.end = content_end
            else:
                if cur is not None:
                    chunks.append(cur)
                cur = _Chunk(start, content_end, section, item)
            prev_line_blank = False
        if nl < 0:
            break
        pos = nl + 1
    if cur is not None:
        chunks.append(cur)
    return chunks


def _token_before(norm: str, i: int, lo: int) -> str:
    j = i
    while j > lo and (norm[j - 1].isalnum() or norm[j - 1] == "."):
        j -= 1
    return norm[j:i]


def _split_chunk(norm: str, ch: _Chunk) -> list[tuple[int, int, str]]:
    """Sentence boundaries inside one chunk: (start, end, section)."""
    out: list[tuple[int, int, str]] = []
    section = ch.section
    end = ch.end

    def sentence_start(p: int, first: bool) -> int:
        """Track inline headers; 'IMPRESSION: 1. ...' gives the header its own sentence."""
        nonlocal section
        p = _skip_spaces(norm, p, end)
        if not first:
            e = _ENUM_RE.match(norm, p, end)
            if e is not None and norm[p].isdigit() and _is_enumerator(norm, p, e.end()):
                p = _skip_spaces(norm, e.end(), end)
        h = _match_header(norm, p, end, line_start=first)
        if h is not None:
            name, is_major, h_end = h
            if not first:
                section = name
            q = _skip_spaces(norm, h_end, end)
            e = _ENUM_RE.match(norm, q, end)
            if e is not None and norm[q].isdigit() and _is_enumerator(norm, q, e.end()):
                out.append((p, h_end, section))
                return _skip_spaces(norm, e.end(), end)
        return p

    s = sentence_start(ch.start, True)
    i = s
    while i < end:
        c = norm[i]
        if c in ".!?" and (i + 1 >= end or norm[i + 1] in " \r\n\"')]"):
            j = i + 1
            while j < end and norm[j] in "\"')]":
                j += 1
            tok = _token_before(norm, i, s).lower()
            if c == "." and tok in ABBREVIATIONS:
                nxt = _skip_spaces(norm, j, end)
                if not (tok in _SOFT_ABBREVIATIONS and nxt < end and norm[nxt].isupper()):
                    i += 1
                    continue
            if c == "." and tok.isdigit() and len(tok) <= 2 and norm[s : i - len(tok)].strip() == "":
                i += 1  # "2." at a sentence start is an enumerator
                continue
            out.append((s, j, section))
            s = sentence_start(j, False)
            i = s
            continue
        i += 1
    if s < end:
        out.append((s, end, section))
    return out


def split_sentences(text: str) -> list[Sentence]:
    """Sentences of ``text`` in order, each with its exact span and section (kind left default)."""
    norm = normalize(text)
    sentences: list[Sentence] = []
    for ch in _chunks(norm):
        for s, e, section in _split_chunk(norm, ch):
            while s < e and text[s].isspace():
                s += 1
            while e > s and text[e - 1].isspace():
                e -= 1
            if e <= s or not _HAS_ALNUM.search(text, s, e):
                continue
            sentences.append(Sentence(index=len(sentences), text=text[s:e], span=(s, e), section=section))
    return sentences
