"""The policy's output format and its strict parser (002 §2.5, R_f).

A valid response is exactly ``<think>...</think><answer>{"slice": k, "bbox_2d_list": [[x1, y1,
x2, y2], ...]}</answer>`` (whitespace around the blocks allowed, nothing else): ``k`` is the
1-based number of a ``<slice k>`` the policy was shown, every box has four numbers with
``0 <= x1 < x2 <= S`` and ``0 <= y1 < y2 <= S`` (pixels of the S x S slice, upper edges
exclusive), and there is at least one box. Anything else is a :class:`FormatFailure` with the
reason (R_f = 0 in training; :class:`PolicyFormatError`, a 422, at inference). The parser never
raises on model text: failures are values, so a malformed sample cannot crash a rollout.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Sequence, Union

from lib.errors import RadgroundError

_RESPONSE = re.compile(r"\A\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*\Z", re.DOTALL)
ANSWER_KEYS = ("slice", "bbox_2d_list")


class PolicyFormatError(RadgroundError):
    """The policy's output does not parse into the answer schema (a 422: the request cannot be answered)."""

    status_code = 422


@dataclass(frozen=True)
class ParsedAnswer:
    think: str
    slice: int  # 1-based, as in the <slice k> tags
    boxes: tuple[tuple[float, float, float, float], ...]

    @property
    def slice_index(self) -> int:
        """0-based index into the slice sequence."""
        return self.slice - 1

    def to_json(self) -> str:
        return format_answer(self.slice, self.boxes)


@dataclass(frozen=True)
class FormatFailure:
    reason: str
    text: str = field(default="", repr=False)


Parsed = Union[ParsedAnswer, FormatFailure]


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_response(text: str, n_slices: int, size: int, max_boxes: int = 8) -> Parsed:
    """Strictly parse one response (see module docstring); never raises."""
    if not isinstance(text, str):
        return FormatFailure(f"response is {type(text).__name__}, not text")
    m = _RESPONSE.match(text)
    if m is None:
        return FormatFailure("response is not exactly <think>...</think><answer>...</answer>", text)
    think, body = m.group("think").strip(), m.group("answer").strip()
    if "<think>" in think or "<answer>" in think or "<answer>" in body:
        return FormatFailure("nested tags", text)
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return FormatFailure("answer is not JSON", text)
    if not isinstance(obj, dict) or set(obj) != set(ANSWER_KEYS):
        return FormatFailure(f"answer must be an object with exactly the keys {list(ANSWER_KEYS)}", text)
    k, boxes = obj["slice"], obj["bbox_2d_list"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_slices:
        return FormatFailure(f"slice must be an integer in 1..{n_slices}, got {k!r}", text)
    if not isinstance(boxes, list) or not 1 <= len(boxes) <= max_boxes:
        return FormatFailure(f"bbox_2d_list must be a list of 1..{max_boxes} boxes", text)
    out = []
    for b in boxes:
        if not isinstance(b, list) or len(b) != 4 or not all(_number(v) for v in b):
            return FormatFailure(f"a box must be four numbers, got {b!r}", text)
        x1, y1, x2, y2 = (float(v) for v in b)
        if not (0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size):
            return FormatFailure(f"box {b} is not ordered inside the {size} x {size} slice", text)
        out.append((x1, y1, x2, y2))
    return ParsedAnswer(think, int(k), tuple(out))


def format_answer(slice_number: int, boxes: Sequence[Sequence[float]]) -> str:
    """The <answer> JSON, compact and with integer pixels (what SFT teaches)."""
    bl = [[int(round(v)) for v in b] for b in boxes]
    return json.dumps({"slice": int(slice_number), "bbox_2d_list": bl}, separators=(",", ":"))


def format_response(think: str, slice_number: int, boxes: Sequence[Sequence[float]]) -> str:
    return f"<think>{think}</think><answer>{format_answer(slice_number, boxes)}</answer>"


def require(parsed: Parsed) -> ParsedAnswer:
    """At inference: the answer, or a :class:`PolicyFormatError` naming what was wrong."""
    if isinstance(parsed, FormatFailure):
        raise PolicyFormatError(f"the policy's output is malformed ({parsed.reason}); no mask was produced")
    return parsed
