"""LLM backend plumbing, offline: a tiny random Qwen2 model + a tokenizer trained on the fly.

Random weights produce garbage, so the model test checks the error / fallback path; the JSON
extraction, validation and sentence mapping are checked on known-good answers fed in directly.
"""
from __future__ import annotations

import logging

import pytest

from lib.reports import ReportParseError, parse_report
from lib.reports.errors import LLMUnavailableError
from lib.reports.llm_parser import (
    LLMLesionList,
    LLMReportParser,
    build_prompt,
    extract_json,
    locate_evidence,
    units_from_llm_output,
)
from lib.reports.sentences import split_sentences

REPORT = (
    "FINDINGS:\n"
    "Liver: Two hypodense lesions in segments VI and VII measuring 12 and 18 mm.\n"
    "Kidneys: Right renal inferior pole cyst, 1.8 cm, without enhancement.\n"
    "Pancreas: No pancreatic mass.\n"
)

GOOD_ANSWER = """<think>the report has three findings</think>
Here are the lesions:
```json
[
  {"organ": "liver", "sub_location": ["segment 6"], "size_mm": [12], "hu": null, "density": "hypodense",
   "lesion_type": "lesion", "negated": false, "count": 1,
   "evidence": "Two hypodense lesions in segments VI and VII measuring 12 and 18 mm"},
  {"organ": "liver", "sub_location": ["seg VII"], "size_mm": [18], "negated": false,
   "evidence": "two  HYPODENSE lesions in segments VI and VII"},
  {"organ": "Right Kidney", "sub_location": ["inferior pole"], "size_mm": [9, 18], "enhancement": "non-enhancing",
   "lesion_type": "cyst", "negated": false, "count": 1, "evidence": "right renal cyst inferior pole 1.8 cm"},
  {"organ": "pancreas", "negated": true, "count": 0, "lesion_type": "mass", "evidence": "No pancreatic mass."}
]
```"""


# ------------------------------------------------------------------------ tiny model fixture
@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    out = tmp_path_factory.mktemp("tiny_qwen")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [REPORT, GOOD_ANSWER, '{"type": "array", "items": {"properties": {}}}'] * 5
    tok.train_from_iterator(corpus, trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<pad>"
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    fast.save_pretrained(out)
    config = transformers.Qwen2Config(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config)
    model.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def tiny_adapter_dir(tiny_llm_dir, tmp_path_factory):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    lora = peft.get_peft_model(base, peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    out = tmp_path_factory.mktemp("tiny_lora")
    lora.save_pretrained(out)
    return str(out)


# ------------------------------------------------------------------------------- model tests
def test_tiny_model_garbage_raises_typed_error(tiny_llm_dir):
    parser = LLMReportParser(tiny_llm_dir, max_new_tokens=12)
    raw = parser.generate(REPORT)
    assert isinstance(raw, str)
    with pytest.raises(ReportParseError) as ei:
        parser.parse(REPORT)
    assert "LLM" in ei.value.message


def test_tiny_model_garbage_falls_back_to_rules(tiny_llm_dir, caplog):
    with caplog.at_level(logging.WARNING):
        parsed = parse_report(REPORT, backend="llm", llm_dir=tiny_llm_dir, fallback="rules", max_new_tokens=12)
    assert parsed.parser == "rules_fallback"
    assert any("falling back" in r.getMessage() for r in caplog.records)
    rules = parse_report(REPORT)
    assert [u.model_dump() for u in parsed.lesions] == [u.model_dump() for u in rules.lesions]


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_tiny_model_with_peft_adapter_loads(tiny_llm_dir, tiny_adapter_dir):
    parser = LLMReportParser(tiny_llm_dir, adapter_dir=tiny_adapter_dir, max_new_tokens=4, fallback="rules")
    assert parser.parse(REPORT).parser == "rules_fallback"
    assert type(parser.generate(REPORT)) is str


def test_prompt_uses_chat_template_and_schema(tiny_llm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llm_dir)
    prompt = build_prompt(tok, REPORT)
    assert prompt.startswith("<|im_start|>system") and prompt.rstrip().endswith("assistant")
    assert REPORT in prompt and '"evidence"' in prompt and '"size_mm"' in prompt


def test_tiny_model_good_answer_through_parse(tiny_llm_dir, monkeypatch):
    parser = LLMReportParser(tiny_llm_dir, max_new_tokens=8)
    monkeypatch.setattr(parser, "generate", lambda text: GOOD_ANSWER)
    parsed = parser.parse(REPORT)
    assert parsed.parser == "llm"
    assert [u.organ for u in parsed.findings] == ["liver", "liver", "kidney_right"]
    kinds = [s.kind.value for s in parsed.sentences]
    assert kinds == ["non_diagnostic", "finding", "finding", "negative"]  # "FINDINGS:" header first


def test_missing_model_dir(tmp_path):
    with pytest.raises(LLMUnavailableError):
        LLMReportParser(str(tmp_path / "nope")).parse(REPORT)
    parsed = parse_report(REPORT, backend="llm", llm_dir=str(tmp_path / "nope"), fallback="rules")
    assert parsed.parser == "rules_fallback" and len(parsed.findings) == 3


# ------------------------------------------------------------------ output handling (no model)
def test_units_from_good_answer_mapped_to_sentences():
    sentences = split_sentences(REPORT)
    units = units_from_llm_output(GOOD_ANSWER, REPORT, sentences)
    assert len(units) == 4
    liver6, liver7, kid, panc = units
    assert liver6.sub_location == ["segment VI"] and liver6.size_mm == [12.0]
    assert liver7.sub_location == ["segment VII"]  # 'seg VII' normalised
    assert liver6.sentence_index == liver7.sentence_index == 1  # second via case/space-insensitive match
    assert kid.organ == "kidney_right" and kid.sub_location == ["lower pole"] and kid.size_mm == [18.0, 9.0]
    assert kid.sentence_index == 2  # word-overlap mapping (quote is not verbatim)
    assert kid.span == sentences[2].span and kid.text == sentences[2].text
    assert kid.volume_ml is not None
    assert panc.negated and panc.sentence_index == 3 and panc.count == 0


@pytest.mark.parametrize(
    "raw",
    [
        "I could not find anything.",
        "",
        "[{\"organ\": \"liver\", \"size_mm\": [-3], \"evidence\": \"Liver\"}]",  # negative size
        "[{\"organ\": \"liver\"}]",  # no evidence field
        "{\"answer\": 42}",
        "[1, 2, 3]",
        "[{\"organ\": \"liver\", \"evidence\": \"x\", \"count\": \"many\"}]",
    ],
)
def test_bad_answers_raise(raw):
    with pytest.raises(ReportParseError):
        units_from_llm_output(raw, REPORT)


def test_extract_json_skips_broken_prefix():
    assert extract_json("noise [unclosed { and then {\"lesions\": []} tail") == {"lesions": []}
    assert extract_json("```json\n[]\n```") == []


def test_hallucinated_evidence_is_dropped():
    raw = '[{"organ": "spleen", "evidence": "zebra quantum ukulele"}]'
    assert units_from_llm_output(raw, REPORT) == []


def test_locate_evidence_exact():
    sentences = split_sentences(REPORT)
    assert locate_evidence("No pancreatic mass.", REPORT, sentences).index == 3


def test_schema_is_list_of_lesions():
    schema = LLMLesionList.json_schema()
    assert schema["type"] == "array"
    props = schema["$defs"]["LLMLesion"]["properties"]
    assert {"organ", "sub_location", "size_mm", "hu", "negated", "count", "evidence"} <= set(props)
    assert "span" not in props and "sentence_index" not in props


def test_llm_impression_restatement_is_flagged(tiny_llm_dir, monkeypatch):
    report = REPORT + "\nIMPRESSION:\n1. Hepatic lesions in segments VI and VII.\n"
    answer = (
        '[{"organ": "liver", "sub_location": ["segment VI"], "size_mm": [12], "evidence": "Two hypodense lesions"},'
        ' {"organ": "liver", "sub_location": ["segment VI", "segment VII"], "count": 2,'
        ' "evidence": "Hepatic lesions in segments VI and VII."}]'
    )
    parser = LLMReportParser(tiny_llm_dir)
    monkeypatch.setattr(parser, "generate", lambda text: answer)
    parsed = parser.parse(report)
    assert [u.restates for u in parsed.lesions] == [False, True]
    assert len(parsed.findings) == 1
