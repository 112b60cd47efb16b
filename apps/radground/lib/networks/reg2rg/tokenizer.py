"""Reg2RG's tokenizer: the placeholder tokens, and a small BPE built offline from synthetic reports.

The prompt holds one ``<image>`` and one ``<region_i>`` per referring region (004 §3.3); each is a
single added token that the model expands into its visual embeddings. The default tokenizer is a
byte-level BPE trained with the ``tokenizers`` library on the synthetic chest reports (no hub
download), saved as one JSON file; a local LLaMA/Qwen folder brings its own tokenizer, to which
the same placeholder tokens are added.
"""
from __future__ import annotations

from typing import Iterable

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

IMAGE_TOKEN = "<image>"
BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"


def region_token(i: int) -> str:
    return f"<region_{i}>"


def placeholder_tokens(max_regions: int) -> list[str]:
    return [IMAGE_TOKEN] + [region_token(i) for i in range(max_regions)]


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1024, max_regions: int = 10) -> PreTrainedTokenizerFast:
    """A byte-level BPE over ``texts`` with BOS/EOS/PAD/UNK and the placeholder tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = [PAD, BOS, EOS, UNK] + placeholder_tokens(max_regions)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap(tok, max_regions)


def wrap(tok, max_regions: int) -> PreTrainedTokenizerFast:
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK)
    add_placeholder_tokens(fast, max_regions)
    return fast


def load_tokenizer_file(path: str, max_regions: int = 10) -> PreTrainedTokenizerFast:
    """The tokenizer saved by :func:`save_tokenizer_file` (one ``tokenizers`` JSON file)."""
    from tokenizers import Tokenizer

    return wrap(Tokenizer.from_file(path), max_regions)


def save_tokenizer_file(tokenizer: PreTrainedTokenizerFast, path: str) -> None:
    tokenizer.backend_tokenizer.save(path)


def load_pretrained_tokenizer(path: str, max_regions: int = 10) -> PreTrainedTokenizerBase:
    """A local LLaMA/Qwen folder's tokenizer with the placeholders added (and a pad token if it has none)."""
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    add_placeholder_tokens(tok, max_regions)
    return tok


def add_placeholder_tokens(tokenizer: PreTrainedTokenizerBase, max_regions: int) -> None:
    tokenizer.add_special_tokens({"additional_special_tokens": placeholder_tokens(max_regions)})


def placeholder_ids(tokenizer: PreTrainedTokenizerBase, max_regions: int) -> tuple[int, list[int]]:
    """(id of ``<image>``, ids of ``<region_0..>``)."""
    ids = tokenizer.convert_tokens_to_ids(placeholder_tokens(max_regions))
    if any(i is None or i == tokenizer.unk_token_id for i in ids):
        raise ValueError("the tokenizer lacks Reg2RG's placeholder tokens")
    return ids[0], list(ids[1:])
