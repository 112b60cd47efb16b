"""A very small Reg2RG (built offline, seconds on a CPU) and a BPE tokenizer trained on synthetic region reports."""
from __future__ import annotations

import functools

import pytest
import torch

from lib.data.region_reports import REGION_NAMES, build_prompt, build_target
from lib.data.synthetic import generate_study
from lib.networks.reg2rg import Reg2RG, Reg2RGConfig
from lib.networks.reg2rg.tokenizer import train_bpe_tokenizer

MINI = dict(
    image_size=(16, 16, 8),
    patch_size=(8, 8, 4),
    vis_dim=32,
    vis_layers=1,
    vis_heads=2,
    vis_mlp=32,
    n_visual_tokens=4,
    perceiver_heads=2,
    mask_size=(16, 16, 8),
    mask_patch_size=(8, 8, 8),
    geo_dim=16,
    geo_heads=2,
    geo_mlp=16,
    lm_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 512},
)


@functools.lru_cache(maxsize=None)
def corpus() -> tuple[str, ...]:
    texts = []
    for seed in range(12):
        rep = generate_study(seed, "tiny", body="chest").truth["region_reports"]
        texts.append(build_target([r for r in REGION_NAMES if r in rep], rep))
    return tuple(texts + [build_prompt(10), build_prompt(0, use_local=False)])


@functools.lru_cache(maxsize=None)
def _tokenizer():
    return train_bpe_tokenizer(corpus(), vocab_size=400)


@pytest.fixture(scope="session")
def tokenizer():
    return _tokenizer()


def mini_model(**overrides) -> Reg2RG:
    torch.manual_seed(0)
    return Reg2RG(Reg2RGConfig(**{**MINI, **overrides}), _tokenizer())


@pytest.fixture
def model():
    return mini_model()
