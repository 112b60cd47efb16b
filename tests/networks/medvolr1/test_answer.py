import pytest

from lib.errors import RadgroundError
from lib.networks.medvolr1.answer import FormatFailure, ParsedAnswer, PolicyFormatError, format_response, parse_response, require

VALID = '<think>The query refers to the liver.</think><answer>{"slice": 3, "bbox_2d_list": [[1, 2, 30, 40], [5.5, 6, 7, 8]]}</answer>'


def test_valid_response_parses():
    p = parse_response(VALID, n_slices=16, size=64)
    assert isinstance(p, ParsedAnswer)
    assert p.slice == 3 and p.slice_index == 2
    assert p.boxes == ((1.0, 2.0, 30.0, 40.0), (5.5, 6.0, 7.0, 8.0))
    assert p.think == "The query refers to the liver."


def test_format_response_round_trips():
    text = format_response("why", 7, [[1, 2, 3, 4]])
    p = parse_response(text, 16, 64)
    assert isinstance(p, ParsedAnswer) and p.slice == 7 and p.boxes == ((1, 2, 3, 4),)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no tags at all",
        '<answer>{"slice": 3, "bbox_2d_list": [[1, 2, 3, 4]]}</answer>',  # no think
        '<think>x</think><answer>{"slice": 3, "bbox_2d_list": [[1, 2, 3, 4]]}</answer> trailing',
        '<think>x</think><answer>{"slice": 3, "bbox_2d_list": [[1, 2, 3, 4]]}',  # unclosed
        "<think>x</think><answer>not json</answer>",
        '<think>x</think><answer>{"slice": 3}</answer>',  # missing key
        '<think>x</think><answer>{"slice": 3, "bbox_2d_list": [[1, 2, 3, 4]], "extra": 1}</answer>',
        '<think>x</think><answer>{"slice": 0, "bbox_2d_list": [[1, 2, 3, 4]]}</answer>',  # 1-based
        '<think>x</think><answer>{"slice": 17, "bbox_2d_list": [[1, 2, 3, 4]]}</answer>',  # beyond the sequence
        '<think>x</think><answer>{"slice": true, "bbox_2d_list": [[1, 2, 3, 4]]}</answer>',
        '<think>x</think><answer>{"slice": 2.5, "bbox_2d_list": [[1, 2, 3, 4]]}</answer>',
        '<think>x</think><answer>{"slice": 3, "bbox_2d_list": []}</answer>',
        '<think>x</think><answer>{"slice": 3, "bbox_2d_list": [[1, 2, 3]]}</answer>',
        '<think>x</think><answer>{"slice": 3, "bbox_2d_list": [[5, 2, 3, 4]]}</answer>',  # x1 > x2
        '<think>x</think><answer>{"slice": 3, "bbox_2d_list": [[1, 2, 3, 65]]}</answer>',  # outside
        '<think>x</think><answer>{"slice": 3, "bbox_2d_list": [[1, "2", 3, 4]]}</answer>',
        '<think>x</think><answer>{"slice": 3, "bbox_2d_list": [[1, NaN, 3, 4]]}</answer>',
        '<think><answer>x</think><answer>{"slice": 3, "bbox_2d_list": [[1, 2, 3, 4]]}</answer>',
        "[" * 5000,
    ],
)
def test_malformed_is_a_failure_value_never_an_exception(text):
    p = parse_response(text, n_slices=16, size=64)
    assert isinstance(p, FormatFailure) and p.reason


def test_non_text_is_a_failure():
    assert isinstance(parse_response(None, 16, 64), FormatFailure)


def test_require_maps_failure_to_a_422():
    with pytest.raises(PolicyFormatError) as e:
        require(parse_response("garbage", 16, 64))
    assert isinstance(e.value, RadgroundError) and e.value.status_code == 422
    assert require(parse_response(VALID, 16, 64)).slice == 3
