"""The shared request-parameter checks: a bad query or token budget is a clear 422 reason."""
from __future__ import annotations

import pytest

from lib.errors import InvalidParamsError
from lib.infers.params import bounded_int, query_text


def test_query_text_cleans_and_refuses():
    assert query_text("  the  liver\n lesion ", 50, "liver") == "the liver lesion"
    for bad, why in ((None, "non-empty"), ("   ", "non-empty"), (3, "non-empty"), ("x" * 51, "longer than 50"), ("a\x07b", "control"), ("a\x00b", "control")):
        with pytest.raises(InvalidParamsError, match=why):
            query_text(bad, 50, "liver")


def test_bounded_int_default_range_and_type():
    assert bounded_int(None, "max_new_tokens", 1, 10, 7) == 7
    assert bounded_int("", "max_new_tokens", 1, 10, 7) == 7
    assert bounded_int("4", "max_new_tokens", 1, 10, 7) == 4
    for bad in ("many", 0, 11, [3]):
        with pytest.raises(InvalidParamsError, match="max_new_tokens must be an integer between 1 and 10"):
            bounded_int(bad, "max_new_tokens", 1, 10, 7)
