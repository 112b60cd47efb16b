"""The frozen sentence encoder: packaged MiniLM offline, LRU cache, hashed test encoder."""
from __future__ import annotations

import os

import pytest
import torch

from lib.networks.text_encoder import HashTextEncoder, HFSentenceEncoder, build_text_encoder, default_minilm_path


@pytest.fixture(scope="module")
def minilm():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # tests/conftest.py: nothing may be downloaded
    return build_text_encoder()  # the default: the packaged MiniLM


def test_minilm_is_the_default_and_loads_offline(minilm):
    assert isinstance(minilm, HFSentenceEncoder)
    assert minilm.model_dir == default_minilm_path() and os.path.isdir(minilm.model_dir)
    assert minilm.dim == 384
    assert not minilm.model.training and not any(p.requires_grad for p in minilm.model.parameters())
    assert build_text_encoder() is minilm  # shared instance


def test_minilm_semantics(minilm):
    e = minilm.encode(["liver lesion", "hepatic lesion", "left kidney"])
    assert e.shape == (3, 384) and e.dtype == torch.float32 and not e.requires_grad
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    sim = e @ e.t()
    assert sim[0, 1] > sim[0, 2] + 0.2


def test_minilm_matches_uncached_and_batched(minilm):
    a = minilm.encode(["segment VII of the liver", "18 mm"])
    b = minilm.encode(["18 mm", "segment VII of the liver", "18 mm"])
    assert torch.allclose(a[0], b[1]) and torch.allclose(a[1], b[0]) and torch.equal(b[0], b[2])
    fresh = build_text_encoder(shared=False)
    assert torch.allclose(fresh.encode(["18 mm"])[0], a[1], atol=1e-5)


def test_cache_hits_and_lru_eviction():
    enc = HashTextEncoder(dim=16, cache_size=2)
    calls = []
    orig = enc._embed
    enc._embed = lambda texts: (calls.append(list(texts)), orig(texts))[1]
    enc.encode(["a", "b", "a"])
    assert calls == [["a", "b"]]
    enc.encode(["b"])
    assert len(calls) == 1  # cached
    enc.encode(["c"])  # evicts the least recently used: "a"
    assert enc.cache_info() == {"size": 2, "max": 2}
    enc.encode(["a"])
    assert calls[-1] == ["a"]


def test_hash_encoder_is_deterministic_and_lexical():
    a, b = HashTextEncoder(dim=64), HashTextEncoder(dim=64)
    texts = ["liver lesion", "liver lesions", "left kidney", ""]
    ea, eb = a.encode(texts), b.encode(texts)
    assert torch.equal(ea, eb) and ea.shape == (4, 64) and ea.dtype == torch.float32
    assert (ea[0] @ ea[1]) > (ea[0] @ ea[2])
    assert torch.count_nonzero(ea[3]) == 0
    assert a.encode([]).shape == (0, 64)


def test_config_errors():
    with pytest.raises(ValueError, match="backend"):
        build_text_encoder({"backend": "clip"})
    with pytest.raises(ValueError, match="path"):
        build_text_encoder({"backend": "hf"})
    assert build_text_encoder({"backend": "hash", "dim": 8}).dim == 8
