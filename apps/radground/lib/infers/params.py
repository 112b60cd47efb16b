"""Validation of the request parameters several infer tasks share (free-text query, token budget).

A bad value is the client's fault: :class:`~lib.errors.InvalidParamsError` (a 422 with the reason),
never a stack trace. One place, so every task refuses the same input with the same words.
"""
from __future__ import annotations

from typing import Any

from lib.errors import InvalidParamsError


def query_text(value: Any, max_chars: int, example: str) -> str:
    """params.query as one line of printable text (whitespace runs collapsed; control characters refused)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidParamsError(f"params.query must be a non-empty string, e.g. {example!r}")
    text = " ".join(value.split())
    if len(text) > max_chars:
        raise InvalidParamsError(f"params.query is longer than {max_chars} characters")
    if not text.isprintable():
        raise InvalidParamsError("params.query holds control characters")
    return text


def bounded_int(value: Any, name: str, lo: int, hi: int, default: int) -> int:
    """params[name] as an integer in [lo, hi] (``default`` when absent)."""
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except (TypeError, ValueError) as e:
        raise InvalidParamsError(f"params.{name} must be an integer between {lo} and {hi}, got {value!r}") from e
    if not lo <= n <= hi:
        raise InvalidParamsError(f"params.{name} must be an integer between {lo} and {hi}, got {n}")
    return n
