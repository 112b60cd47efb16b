"""LLM report parser: a frozen causal LM extracts the lesion list as JSON (000 §2.2, Qwen3-8B).

The model is loaded from a LOCAL folder (``AutoTokenizer`` / ``AutoModelForCausalLM``, optionally a
PEFT adapter folder on top). It is prompted with the report and the JSON schema of the lesion list
(:class:`LLMLesion` = the content fields of :class:`LesionUnit` plus an ``evidence`` quote), decoded
greedily with a ``max_new_tokens`` cap. The first JSON array/object in the answer is validated with
pydantic; sentence spans come from the project's splitter, and each unit is put in the sentence
that contains its evidence quote (or, failing that, the sentence sharing most words with it).

Anything unusable in the answer raises :class:`ReportParseError`; with ``fallback="rules"`` the
rule parser's result is returned instead (``parser="rules_fallback"``, logged as a warning).
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from lib.reports import vocabulary as V
from lib.reports.errors import LLMUnavailableError, ReportError, ReportParseError
from lib.reports.rule_parser import RESTATING_SECTIONS, RuleParser, restates_earlier
from lib.reports.schema import LesionUnit, ParsedReport, Sentence, SentenceKind
from lib.reports.sentences import split_sentences

logger = logging.getLogger(__name__)

#: LesionUnit fields the model fills; sentence_index/span/text/volume are computed here.
LLM_FIELDS = ("organ", "sub_location", "size_mm", "hu", "density", "enhancement", "lesion_type", "negated", "count")


class _LLMBase(BaseModel):
    model_config = ConfigDict(extra="ignore")


#: One lesion as the LLM must write it.
LLMLesion = create_model(
    "LLMLesion",
    __base__=_LLMBase,
    evidence=(str, Field(description="exact quote of the report sentence describing this lesion")),
    **{f: (LesionUnit.model_fields[f].annotation, LesionUnit.model_fields[f]) for f in LLM_FIELDS},
)
LLMLesionList = TypeAdapter(list[LLMLesion])

SYSTEM_PROMPT = (
    "You are a radiology information extraction system. You read abdominal CT reports and return "
    "the described lesions as JSON. Answer with JSON only, no explanation."
)
INSTRUCTIONS = (
    "List every lesion described in the report, one item per lesion (split 'two lesions in segments VI "
    "and VII measuring 12 and 18 mm' into two items). Include explicitly negated findings such as "
    "'No pancreatic mass.' with negated=true and count=0. Organ keys: liver, spleen, kidney_left, "
    "kidney_right, kidney (side not stated), pancreas, gallbladder, aorta. Sub-locations: 'segment I'..'segment "
    "VIII' (Roman numerals), 'upper pole', 'interpolar region', 'lower pole', 'head', 'uncinate process', "
    "'neck', 'body', 'tail'. Sizes in millimetres, long axis first. hu is the attenuation in Hounsfield "
    "units if stated. 'evidence' must be copied exactly from the report. Return a JSON array that "
    "validates against this JSON schema:"
)


def build_messages(report: str) -> list[dict[str, str]]:
    schema = json.dumps(LLMLesionList.json_schema(), separators=(",", ":"))
    user = f"Report:\n<<<\n{report}\n>>>\n\n{INSTRUCTIONS}\n{schema}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def build_prompt(tokenizer: Any, report: str) -> str:
    """The prompt string: the tokenizer's chat template if it has one, else plain text."""
    messages = build_messages(report)
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
            )
        except Exception as e:  # a broken template should not stop parsing
            logger.warning("chat template failed (%s); using a plain prompt", e)
    return f"{messages[0]['content']}\n\n{messages[1]['content']}\n\nJSON:\n"


# ------------------------------------------------------------------------------- output handling
_THINK_RE = re.compile(r"<think>.*?</think>", re.S)
_MAX_JSON_TRIES = 64


def extract_json(text: str) -> Any:
    """First JSON array or object in ``text`` (skipping prose, code fences, <think> blocks)."""
    text = _THINK_RE.sub("", text)
    decoder = json.JSONDecoder()
    tries = 0
    pos = 0
    while tries < _MAX_JSON_TRIES:
        starts = [i for i in (text.find("[", pos), text.find("{", pos)) if i >= 0]
        if not starts:
            break
        i = min(starts)
        tries += 1
        try:
            value, _ = decoder.raw_decode(text, i)
            return value
        except json.JSONDecodeError:
            pos = i + 1
    raise ReportParseError("LLM output contains no JSON array or object", raw_output=text)


def _as_list(data: Any, raw: str) -> list:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("lesions", "lesion_units", "findings", "items", "results"):
            if isinstance(data.get(key), list):
                return data[key]
        if "organ" in data:
            return [data]
    raise ReportParseError("LLM output JSON is not a list of lesions", raw_output=raw)


_WORDS = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def _sentence_at(sentences: list[Sentence], start: int, end: int) -> Optional[Sentence]:
    best, best_ov = None, 0
    for s in sentences:
        ov = min(end, s.span[1]) - max(start, s.span[0])
        if s.span[0] <= start < s.span[1]:
            return s
        if ov > best_ov:
            best, best_ov = s, ov
    return best


def locate_evidence(evidence: str, report: str, sentences: list[Sentence]) -> Optional[Sentence]:
    """The sentence holding ``evidence``: exact match, then case/space-insensitive, then word overlap."""
    ev = evidence.strip().strip("\"'")
    if ev:
        i = report.find(ev)
        if i >= 0:
            return _sentence_at(sentences, i, i + len(ev))
        # case- and whitespace-insensitive: compare on a collapsed copy, map back via an index table
        idx, chars = [], []
        prev_space = False
        for k, c in enumerate(report):
            if c.isspace():
                if prev_space:
                    continue
                c, prev_space = " ", True
            else:
                prev_space = False
            idx.append(k)
            chars.append(c.lower())
        flat = "".join(chars)
        target = " ".join(ev.lower().split())
        j = flat.find(target)
        if j >= 0:
            return _sentence_at(sentences, idx[j], idx[j + len(target) - 1] + 1)
    words = set(_WORDS.findall(ev.lower()))
    if not words:
        return None
    best, best_score = None, 0.0
    for s in sentences:
        sw = set(_WORDS.findall(s.text.lower()))
        score = len(words & sw) / len(words)
        if score > best_score:
            best, best_score = s, score
    return best if best_score >= 0.3 else None


def units_from_llm_output(raw: str, report: str, sentences: Optional[list[Sentence]] = None) -> list[LesionUnit]:
    """Validate the model's answer and turn it into :class:`LesionUnit` s mapped to sentences.

    Raises :class:`ReportParseError` if there is no JSON, it is not a lesion list, or an item does not
    validate. Items whose evidence matches no sentence are dropped (a hallucination), with a warning.
    """
    sentences = split_sentences(report) if sentences is None else sentences
    items = _as_list(extract_json(raw), raw)
    try:
        lesions = LLMLesionList.validate_python(items)
    except ValidationError as e:
        raise ReportParseError(f"LLM output does not match the lesion schema: {e.errors()[0].get('msg')}", raw) from e
    units: list[LesionUnit] = []
    for item in lesions:
        sent = locate_evidence(item.evidence, report, sentences)
        if sent is None:
            logger.warning("LLM lesion with evidence %r matches no report sentence; dropped", item.evidence[:80])
            continue
        organ = V.canonical_organ(item.organ)
        subs: list[str] = []
        for s in item.sub_location:
            subs += [x for x in V.normalize_sub_location(organ, s) if x not in subs]
        data = {f: getattr(item, f) for f in LLM_FIELDS}
        data.update(
            organ=organ,
            sub_location=subs,
            size_mm=sorted((float(x) for x in item.size_mm), reverse=True),
            count=0 if item.negated else max(item.count, 1),
            sentence_index=sent.index,
            span=tuple(sent.span),
            text=sent.text,
        )
        try:
            units.append(LesionUnit(**data).with_volume())
        except ValidationError as e:
            raise ReportParseError(f"LLM lesion is invalid: {e.errors()[0].get('msg')}", raw) from e
    return units


def assemble(report: str, sentences: list[Sentence], units: list[LesionUnit], parser: str = "llm") -> ParsedReport:
    """Sentence kinds from the units (FINDING/NEGATIVE); other sentences keep the rule parser's kind."""
    rules = RuleParser().parse(report, sentences)
    out = []
    for s in rules.sentences:
        mine = [u for u in units if u.sentence_index == s.index]
        organs = list(s.organs)
        organs += [u.organ for u in mine if u.organ not in organs]
        if any(not u.negated for u in mine):
            kind = SentenceKind.FINDING
        elif mine:
            kind = SentenceKind.NEGATIVE
        elif s.kind == SentenceKind.FINDING:
            kind = SentenceKind.NON_DIAGNOSTIC  # the LLM saw no lesion here
        else:
            kind = s.kind
        out.append(s.model_copy(update={"kind": kind, "organs": organs}))
    units = sorted(units, key=lambda u: u.sentence_index)
    earlier: list[LesionUnit] = []
    for u in units:  # impression items restate findings (same convention as the rule parser)
        if out[u.sentence_index].section in RESTATING_SECTIONS and not u.negated:
            u.restates = restates_earlier(u, earlier)
        earlier.append(u)
    return ParsedReport(text=report, sentences=out, lesions=units, parser=parser)


# ---------------------------------------------------------------------------------- the model
_MODEL_CACHE: dict[tuple, tuple[Any, Any]] = {}
_CACHE_LOCK = threading.Lock()


def load_model(model_dir: str, adapter_dir: Optional[str] = None, device: Optional[str] = None):
    """(tokenizer, model) from local folders, cached per (model_dir, adapter_dir, device)."""
    key = (os.path.abspath(model_dir), os.path.abspath(adapter_dir) if adapter_dir else None, device)
    with _CACHE_LOCK:
        if key in _MODEL_CACHE:
            return _MODEL_CACHE[key]
        if not os.path.isdir(model_dir):
            raise LLMUnavailableError(f"LLM folder not found: {model_dir}")
        if adapter_dir and not os.path.isdir(adapter_dir):
            raise LLMUnavailableError(f"LLM adapter folder not found: {adapter_dir}")
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
            tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype="auto")
            if adapter_dir:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
            model.to(dev)
            model.eval()
        except Exception as e:
            raise LLMUnavailableError(f"cannot load the LLM from {model_dir}: {type(e).__name__}: {e}") from e
        _MODEL_CACHE[key] = (tok, model)
        return tok, model


class LLMReportParser:
    """``parse(text) -> ParsedReport`` backed by a local transformers causal LM."""

    name = "llm"

    def __init__(
        self,
        model_dir: str,
        adapter_dir: Optional[str] = None,
        max_new_tokens: int = 1024,
        fallback: Optional[str] = None,
        device: Optional[str] = None,
    ):
        if fallback not in (None, "rules"):
            raise ReportError(f"unknown fallback {fallback!r}; use None or 'rules'")
        self.model_dir, self.adapter_dir, self.device = model_dir, adapter_dir, device
        self.max_new_tokens = int(max_new_tokens)
        self.fallback = fallback
        self._lock = threading.Lock()

    def generate(self, report: str) -> str:
        """The model's raw answer for ``report`` (greedy decoding)."""
        import torch

        tok, model = load_model(self.model_dir, self.adapter_dir, self.device)
        prompt = build_prompt(tok, report)
        inputs = tok(prompt, return_tensors="pt", add_special_tokens=False)
        dev = next(model.parameters()).device
        inputs = {k: v.to(dev) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with self._lock, torch.inference_mode():
            out = model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad
            )
        return tok.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    def parse(self, text: str) -> ParsedReport:
        sentences = split_sentences(text)
        try:
            try:
                raw = self.generate(text)
            except ReportError:
                raise
            except Exception as e:  # generation failure (OOM, bad config): typed, never a crash
                raise ReportParseError(f"LLM generation failed: {type(e).__name__}: {e}") from e
            units = units_from_llm_output(raw, text, sentences)
        except (ReportParseError, LLMUnavailableError) as e:
            if self.fallback != "rules":
                raise
            logger.warning("LLM report parser failed (%s); falling back to the rule parser", e.message)
            parsed = RuleParser().parse(text, sentences)
            return parsed.model_copy(update={"parser": "rules_fallback"})
        return assemble(text, sentences, units, parser=self.name)


def get_llm_parser(
    model_dir: str,
    adapter_dir: Optional[str] = None,
    fallback: Optional[str] = None,
    max_new_tokens: int = 1024,
    device: Optional[str] = None,
) -> LLMReportParser:
    """A parser object (cheap); the model itself is loaded once per folder and cached."""
    return LLMReportParser(model_dir, adapter_dir, max_new_tokens=max_new_tokens, fallback=fallback, device=device)
