"""Seg-det-explain (001): one VLM that segments, detects and explains a CT slice, with a closer look."""
from .config import SegDetExplainConfig
from .model import SegDetExplain

__all__ = ["SegDetExplain", "SegDetExplainConfig"]
