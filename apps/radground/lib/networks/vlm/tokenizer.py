"""The VLM's tokenizer: Qwen's chat/vision special tokens, a BPE built offline, and added task tokens.

A local Qwen2.5-VL folder brings its own tokenizer. Otherwise a byte-level BPE is trained with the
``tokenizers`` library on the project's own text (synthetic reports, the appearance-description
vocabulary, JSON / ``<think>``/``<answer>`` syntax, digits), so nothing is downloaded; digits are
split one by one (as Qwen does) so sizes and coordinates are spelt digit by digit.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD, VISION_PAD = "<|image_pad|>", "<|video_pad|>", "<|vision_pad|>"
#: The special tokens Qwen2.5-VL's chat template and vision inputs rely on (same strings as the real tokenizer).
QWEN_SPECIAL_TOKENS = [PAD, IM_START, IM_END, VISION_START, VISION_END, VISION_PAD, IMAGE_PAD, VIDEO_PAD]
#: Reasoning-format tokens (R1-style answers); kept as ordinary added tokens so decoding shows them.
FORMAT_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

#: Words and syntax the models must be able to spell even if the corpus lacks them.
BASE_VOCABULARY = [
    '{"shape": "", "size": "", "position": "", "adjacency": [], "intensity": "", "texture": "", "boundary": ""}',
    "0 1 2 3 4 5 6 7 8 9 . , : ; - + ( ) [ ] { } \" ' / % mm cm ml HU slice slices box boxes mask",
    "Segment the liver in this CT slice. Detect the lesion. Where is the right kidney? Can you have a closer look?",
    "small medium large tiny round oval elongated irregular lobulated tubular crescent wedge-shaped triangular",
    "left right upper lower central anterior posterior medial lateral superior inferior midline quadrant",
    "adjacent to abutting near next to bordering hypodense hyperdense isodense homogeneous heterogeneous",
    "well-defined ill-defined smooth sharp blurred margin boundary texture intensity enhancement",
    "yes no none present absent normal abnormal unremarkable organ lesion nodule mass cyst structure",
]


def project_corpus(n_studies: int = 6) -> list[str]:
    """Reports of a few synthetic abdominal and chest studies plus :data:`BASE_VOCABULARY` and organ names."""
    from lib.anatomy.labels import ORGAN_DISPLAY
    from lib.data.synthetic import generate_study

    texts = list(BASE_VOCABULARY) + [" ".join(ORGAN_DISPLAY.values())]
    for seed in range(n_studies):
        for body in ("abdomen", "chest"):
            texts.append(generate_study(10_000 + seed, "tiny", body=body).report)
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, task_tokens: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """A byte-level BPE over ``texts`` with Qwen's special tokens, the format tokens and ``task_tokens``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=QWEN_SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return wrap_tokenizer(tok, task_tokens)


def wrap_tokenizer(tok, task_tokens: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    """A ``tokenizers.Tokenizer`` as a transformers fast tokenizer with Qwen's pad/eos conventions."""
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=IM_END)
    fast.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL_TOKENS[1:]})
    add_tokens(fast, FORMAT_TOKENS)
    add_tokens(fast, task_tokens)
    return fast


def add_tokens(tokenizer: PreTrainedTokenizerBase, tokens: Sequence[str]) -> list[int]:
    """Add ``tokens`` as whole, un-normalised tokens (idempotent); returns their ids."""
    from tokenizers import AddedToken

    new = [t for t in tokens if t not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_tokens([AddedToken(t, normalized=False, special=False, single_word=False) for t in new])
    return token_ids(tokenizer, tokens)


def token_ids(tokenizer: PreTrainedTokenizerBase, tokens: Sequence[str]) -> list[int]:
    """Ids of single tokens; raises if one is not in the vocabulary (it would silently become several pieces)."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise ValueError(f"tokens not in the vocabulary: {missing}")
    return [vocab[t] for t in tokens]


def tokenizer_to_str(tokenizer: PreTrainedTokenizerFast) -> str:
    """The whole tokenizer (added tokens included) as one JSON string, for checkpoints."""
    return tokenizer.backend_tokenizer.to_str()


def tokenizer_from_str(data: str, task_tokens: Sequence[str] = ()) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer

    return wrap_tokenizer(Tokenizer.from_str(data), task_tokens)


def load_local_tokenizer(path: str, task_tokens: Sequence[str] = ()) -> PreTrainedTokenizerBase:
    """A local Qwen2.5-VL folder's tokenizer with the format and task tokens added."""
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = PAD
    add_tokens(tok, FORMAT_TOKENS)
    add_tokens(tok, task_tokens)
    return tok
