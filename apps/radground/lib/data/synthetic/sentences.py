"""The sentence convention of the synthetic reports, as a plain splitter anyone can reuse.

The truth spans written with every study are exactly what ``split_sentences`` returns on the
report, so a parser that uses (or mirrors) it is aligned with the truth sentence indices:

* every line is split on its own (a line break always ends a sentence);
* a leading list marker (``1.``, ``2)``, ``-``, ``*``, ``•``) is not part of the sentence;
* inside a line, a sentence ends at ``.``, ``!`` or ``?`` followed by whitespace, except after a
  known abbreviation (none are used by the generator) -- decimals such as ``1.8 cm`` never split;
* a line without final punctuation (title, ``FINDINGS:`` header) is one sentence;
* inline labels (``Liver: ...``, ``TECHNIQUE: ...``) belong to the sentence they start;
* spans exclude surrounding whitespace; empty lines give no sentence.

It is kept apart from ``lib.reports.sentences`` on purpose: the truth the parser is scored against
must not come from the parser itself.
"""
from __future__ import annotations

import re

_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+")
_BOUNDARY = re.compile(r"[.!?](?=\s+\S)")
ABBREVIATIONS = ("approx", "e.g", "i.e", "dr", "vs", "mr", "mrs", "ms", "fig", "cf", "etc")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans (start, end) of the sentences of ``text`` (see module docstring)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for line in text.split("\n"):
        start = pos
        pos += len(line) + 1
        m = _MARKER.match(line)
        off = m.end() if m else 0
        cur = off
        for b in _BOUNDARY.finditer(line, off):
            word = re.search(r"([A-Za-z.]+)$", line[cur : b.start()])
            if line[b.start()] == "." and word and word.group(1).lower() in ABBREVIATIONS:
                continue  # "approx." / "e.g." do not end a sentence
            _add(spans, line, start, cur, b.start() + 1)
            cur = b.start() + 1
        _add(spans, line, start, cur, len(line))
    return spans


def _add(spans, line, base, a, b):
    seg = line[a:b]
    stripped = seg.strip()
    if not stripped:
        return
    lead = len(seg) - len(seg.lstrip())
    s = base + a + lead
    spans.append((s, s + len(stripped)))
