"""Report generation metrics of 004 §4.1: NLG (BLEU-1..4, METEOR, ROUGE-L), clinical efficacy, region recognition.

- NLG: ``pycocoevalcap`` (the COCO caption toolkit report-generation papers use): BLEU-n, METEOR
  1.5 (its jar carries its own WordNet synonym and paraphrase tables, so nothing is downloaded;
  it needs ``java`` on PATH) and ROUGE-L, on PTB-tokenised lower-case text. Corpus-level scores
  over studies, as the toolkit computes them.
- Clinical efficacy (CE): 004 uses a RadBERT classifier for 18 CT-RATE abnormality labels; no such
  model loads offline, so the labels come from this project's report parser: every sentence it
  marks as a present finding (negation and hedges are its job) is labelled by its chest region and
  a finding term. The label set is the 11 abnormalities the synthetic engine draws (CE_LABELS).
  Precision/recall/F1 are micro-averaged over (study, label) pairs.
- Region recognition (Table 3): per region, the area named in the RRA prefix against the region
  given (the authors' counting: a wrong name is a false positive of the named area and a false
  negative of the given one; no name is a false negative only).
"""
from __future__ import annotations

import re
import shutil
from collections import Counter
from typing import Iterable, Mapping, Optional, Sequence

from lib.reports import ReportError, parse_report
from lib.reports.schema import SentenceKind

#: CE label -> (chest region it belongs to, term pattern in a finding sentence).
CE_LABELS: dict[str, tuple[str, str]] = {
    "lung nodule": ("lung", r"\bnodul"),
    "lung mass": ("lung", r"\bmass"),
    "emphysema": ("lung", r"emphysem"),
    "consolidation": ("lung", r"consolidat"),
    "atelectasis": ("lung", r"atelecta"),
    "pleural effusion": ("pleura", r"effusion"),
    "cardiomegaly": ("heart", r"cardiomegaly|enlarged"),
    "pericardial effusion": ("heart", r"pericardial effusion"),
    "thyroid nodule": ("thyroid", r"\bnodul"),
    "degenerative change": ("bone", r"degenerative|osteophyt"),
    "hiatal hernia": ("esophagus", r"hernia"),
}
_CE_RE = {k: re.compile(p, re.IGNORECASE) for k, (_, p) in CE_LABELS.items()}

#: Synthetic finding kind (truth JSON) -> CE label.
FINDING_KIND_LABEL: dict[str, str] = {
    "nodule": "lung nodule",
    "mass": "lung mass",
    "emphysema": "emphysema",
    "consolidation": "consolidation",
    "atelectasis": "atelectasis",
    "pleural_effusion": "pleural effusion",
    "cardiomegaly": "cardiomegaly",
    "pericardial_effusion": "pericardial effusion",
    "thyroid_nodule": "thyroid nodule",
    "degenerative": "degenerative change",
    "hiatal_hernia": "hiatal hernia",
}


# ---------------------------------------------------------------------- NLG
def java_available() -> bool:
    return shutil.which("java") is not None


def nlg_scores(references: Sequence[str], predictions: Sequence[str], meteor: bool = True) -> dict[str, Optional[float]]:
    """BLEU-1..4, METEOR and ROUGE-L (0-1) of ``predictions`` against one reference each.

    Text is lower-cased and split into words and numbers, punctuation dropped (what the toolkit's
    PTB tokeniser + punctuation filter gives on these reports, without a java start per call).
    Without java METEOR cannot run: it is then None, never a made-up number.
    """
    if len(references) != len(predictions):
        raise ValueError("one reference per prediction")
    if not references:
        raise ValueError("nothing to score")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {str(i): [r or ""] for i, r in enumerate(references)}
    res = {str(i): [p or ""] for i, p in enumerate(predictions)}
    gts = {k: [_simple_tokens(c) for c in v] for k, v in gts.items()}
    res = {k: [_simple_tokens(c) for c in v] for k, v in res.items()}
    # Empty hypotheses break BLEU's and METEOR's counting: score them as a single unknown word.
    res = {k: [c if c.strip() else "<empty>" for c in v] for k, v in res.items()}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    out: dict[str, Optional[float]] = {f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}
    out["METEOR"] = float(meteor_scorer().compute_score(gts, res)[0]) if (meteor and java_available()) else None
    out["ROUGE-L"] = float(rouge)
    return out


_METEOR = None


def meteor_scorer():
    """One METEOR 1.5 java process per Python process: starting it loads its 60 MB paraphrase table
    (15-20 s), so it is started once and ended at exit (pycocoevalcap only ends it on garbage collection)."""
    global _METEOR
    if _METEOR is None:
        import atexit

        from pycocoevalcap.meteor.meteor import Meteor

        _METEOR = Meteor()
        atexit.register(_close_meteor, _METEOR)
    return _METEOR


def _close_meteor(scorer) -> None:
    proc = getattr(scorer, "meteor_p", None)
    if proc is None:
        return
    try:
        with scorer.lock:
            proc.stdin.close()
            proc.kill()
            proc.wait()
    except Exception:
        pass


def _simple_tokens(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", (text or "").lower()))


# ---------------------------------------------------------------------- clinical efficacy
def finding_labels(text: str, region: Optional[str] = None) -> set[str]:
    """CE labels of ``text``: present findings (per the project's parser) named by CE_LABELS.

    ``region`` is the section the text was written for: a sentence the parser cannot place in a
    region takes it. Unparseable text (empty, no content) has no labels.
    """
    if not text or not text.strip():
        return set()
    try:
        parsed = parse_report(text)
    except ReportError:
        return set()
    labels = set()
    for s in parsed.sentences:
        if s.kind != SentenceKind.FINDING:
            continue
        where = s.region or region
        for label, (label_region, _) in CE_LABELS.items():
            if where == label_region and _CE_RE[label].search(s.text):
                labels.add(label)
    return labels


def region_finding_labels(region_texts: Mapping[str, str]) -> set[str]:
    """CE labels of a report given region by region ({region: text})."""
    out: set[str] = set()
    for region, text in region_texts.items():
        out |= finding_labels(text, region)
    return out


def precision_recall_f1(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn}


def clinical_efficacy(references: Sequence[Iterable[str]], predictions: Sequence[Iterable[str]]) -> dict:
    """Micro P/R/F1 over (study, label) pairs, plus per-label counts and scores."""
    if len(references) != len(predictions):
        raise ValueError("one reference label set per prediction")
    tp, fp, fn = Counter(), Counter(), Counter()
    for ref, pred in zip(references, predictions):
        ref, pred = set(ref), set(pred)
        for lab in ref & pred:
            tp[lab] += 1
        for lab in pred - ref:
            fp[lab] += 1
        for lab in ref - pred:
            fn[lab] += 1
    out = precision_recall_f1(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    out["per_label"] = {lab: precision_recall_f1(tp[lab], fp[lab], fn[lab]) for lab in CE_LABELS}
    return out


# ---------------------------------------------------------------------- region recognition
def region_recognition(pairs: Iterable[tuple[str, Optional[str]]], regions: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per region P/R/F1 of (given region, recognised area or None) pairs (004 Table 3)."""
    tp, fp, fn = Counter(), Counter(), Counter()
    for given, named in pairs:
        if named == given:
            tp[given] += 1
        else:
            fn[given] += 1
            if named is not None:
                fp[named] += 1
    return {r: precision_recall_f1(tp[r], fp[r], fn[r]) for r in regions}


# ---------------------------------------------------------------------- findings per region
def region_finding_scores(references: Sequence[Mapping[str, Iterable[str]]], predictions: Sequence[Mapping[str, str]], regions: Sequence[str]) -> dict[str, dict]:
    """Per region, finding-mention P/R/F1 over (study, label) pairs, and ``"all"`` (micro).

    ``references``: per study, region -> the CE labels the truth has there; ``predictions``: per
    study, region -> the text generated for that region. A region's prediction is the CE labels
    of *that region* its text names (a lung section that mentions an effusion is no pleura report).
    """
    return finding_scores_from_counts(study_region_finding_counts(references, predictions, regions), regions)


def finding_scores_from_counts(per_study: Sequence[Mapping[str, Mapping[str, int]]], regions: Sequence[str]) -> dict[str, dict]:
    """:func:`region_finding_scores` from counts already made by :func:`study_region_finding_counts`
    (a caller that also needs the per-study counts labels each report once, not twice)."""
    counts = {r: Counter() for r in regions}
    for study in per_study:
        for r in regions:
            counts[r].update(study[r])
    out = {r: precision_recall_f1(c["tp"], c["fp"], c["fn"]) for r, c in counts.items()}
    out["all"] = precision_recall_f1(*(sum(c[k] for c in counts.values()) for k in ("tp", "fp", "fn")))
    return out


def study_region_finding_counts(references: Sequence[Mapping[str, Iterable[str]]], predictions: Sequence[Mapping[str, str]], regions: Sequence[str]) -> list[dict[str, dict[str, int]]]:
    """Per study, region -> {tp, fp, fn} of finding mentions (what :func:`region_finding_scores`
    sums); kept per study so that two models can be compared study by study (paired bootstrap)."""
    if len(references) != len(predictions):
        raise ValueError("one reference per prediction")
    out = []
    for ref, pred in zip(references, predictions):
        study = {}
        for r in regions:
            own = {lab for lab, (reg, _) in CE_LABELS.items() if reg == r}
            want = set(ref.get(r, ())) & own
            got = finding_labels(pred.get(r, ""), r) & own
            study[r] = {"tp": len(want & got), "fp": len(got - want), "fn": len(want - got)}
        out.append(study)
    return out
