"""The offline BPE tokenizer: placeholders are single tokens, text round-trips, the file reloads identically."""
from __future__ import annotations

from lib.networks.reg2rg.tokenizer import (
    IMAGE_TOKEN,
    load_tokenizer_file,
    placeholder_ids,
    region_token,
    save_tokenizer_file,
)


def test_placeholders_are_single_distinct_tokens(tokenizer):
    text = f"context: {IMAGE_TOKEN}. The region 3 is {region_token(3)}."
    toks = tokenizer.tokenize(text)
    assert IMAGE_TOKEN in toks and region_token(3) in toks
    img, regs = placeholder_ids(tokenizer, 10)
    assert len({img, *regs}) == 11
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids.count(img) == 1 and ids.count(regs[3]) == 1


def test_report_text_round_trips(tokenizer):
    text = "The region 0 is lung: There is a 7 mm part-solid nodule in the right upper lobe."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_file_round_trip(tokenizer, tmp_path):
    path = str(tmp_path / "tok.json")
    save_tokenizer_file(tokenizer, path)
    again = load_tokenizer_file(path, 10)
    text = f"{IMAGE_TOKEN} The heart is enlarged. {region_token(9)}"
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert (again.bos_token_id, again.eos_token_id, again.pad_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert len(again) == len(tokenizer)
