"""Reg2RG (004): region-guided referring and grounding for CT report generation.

``config`` (sizes, Table 5 feature switches), ``visual`` (MONAI ViT volume/mask encoders, Perceiver
adapter), ``tokenizer`` (placeholder tokens, offline BPE), ``language`` (causal LM + LoRA),
``model`` (placeholder splicing, loss, generation).
"""
from .config import Reg2RGConfig
from .model import IGNORE_INDEX, Reg2RG

__all__ = ["IGNORE_INDEX", "Reg2RG", "Reg2RGConfig"]
