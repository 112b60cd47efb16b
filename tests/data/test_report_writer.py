"""The report and its truth: spans, lesion links, stated sizes, true negatives, variety."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np

from lib.anatomy.labels import SUB_LOCATIONS
from lib.data.synthetic.report_writer import LABELS, write_report
from lib.data.synthetic.sentences import split_sentences

KINDS = {"finding", "negative", "normal", "non_diagnostic"}
SECTIONS = {"title", "history", "technique", "comparison", "findings", "impression"}
ORGAN_RE = {
    "liver": re.compile(r"\b(liver|hepatic)\b", re.I),
    "pancreas": re.compile(r"\bpancrea(s|tic)\b", re.I),
    "kidney_right": re.compile(r"\bright\b.*\b(kidneys?|renal)\b|\b(kidneys?|renal)\b.*\bright\b", re.I),
    "kidney_left": re.compile(r"\bleft\b.*\b(kidneys?|renal)\b|\b(kidneys?|renal)\b.*\bleft\b", re.I),
}
LABEL_PREFIX = re.compile(r"^(?:%s):\s" % "|".join(re.escape(x) for v in LABELS.values() for x in v), re.I)


def _body(text: str) -> str:
    """Sentence text without an inline section label ('Liver: ...')."""
    return LABEL_PREFIX.sub("", text, count=1)


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)]


def test_spans_index_the_report(tiny_studies):
    for s in tiny_studies:
        sents = s.truth["sentences"]
        assert [x["index"] for x in sents] == list(range(len(sents)))
        assert [tuple(x["span"]) for x in sents] == split_sentences(s.report)
        for x in sents:
            a, b = x["span"]
            assert s.report[a:b] == x["text"]
            assert x["kind"] in KINDS and x["section"] in SECTIONS
            assert ". " not in x["text"]  # no abbreviation or second sentence inside
        for l in s.truth["lesions"]:
            assert s.report[l["span"][0] : l["span"][1]] == sents[l["sentence_index"]]["text"]


def test_report_layout(tiny_studies):
    for s in tiny_studies:
        r = s.report
        assert "FINDINGS:" in r and "IMPRESSION:" in r and "COMPARISON: None." in r
        assert "contrast" in r.split("FINDINGS:")[0]
        assert r.index("FINDINGS:") < r.index("IMPRESSION:")
        kinds = {x["kind"] for x in s.truth["sentences"]}
        assert {"non_diagnostic"} <= kinds and ({"normal", "negative"} & kinds)


def test_each_lesion_linked_to_one_finding_sentence(tiny_studies):
    for s in tiny_studies:
        sents = s.truth["sentences"]
        for l in s.truth["lesions"]:
            owners = [x for x in sents if l["id"] in x["lesion_ids"] and not x["restates"]]
            assert len(owners) == 1
            x = sents[l["sentence_index"]]
            assert x is owners[0] or x == owners[0]
            assert x["kind"] == "finding" and x["section"] == "findings" and l["organ"] in x["organs"]
            assert ORGAN_RE[l["organ"]].search(_body(x["text"])), (s.study_id, x["text"])
        for x in sents:
            if x["kind"] == "finding" and not x["restates"]:
                assert x["lesion_ids"] and x["section"] == "findings"
            if x["restates"]:
                assert x["kind"] == "finding" and x["section"] == "impression"
                assert set(x["lesion_ids"]) <= {l["id"] for l in s.truth["lesions"]}
            if x["kind"] != "finding":
                assert not x["lesion_ids"]


def test_sentence_states_reported_size(tiny_studies):
    for s in tiny_studies:
        for l in s.truth["lesions"]:
            text = s.truth["sentences"][l["sentence_index"]]["text"]
            rep = l["reported_size_mm"]
            assert 1 <= len(rep) <= 3 and rep == sorted(rep, reverse=True)
            assert l["reported_size_text"] in text
            nums = _numbers(text)
            for v in rep:
                assert v in nums or round(v / 10.0, 1) in nums, (text, rep)
            assert abs(rep[0] - l["size_mm"][0]) <= 0.08 * l["size_mm"][0] + 2.5, (text, l["size_mm"])
            if l["reported_hu"] is not None:
                assert l["reported_hu"] in nums and abs(l["reported_hu"] - l["hu"]) <= 10


def test_sub_location_is_stated(tiny_studies):
    roman = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI", "7": "VII", "8": "VIII"}
    for s in tiny_studies:
        for l in s.truth["lesions"]:
            text = s.truth["sentences"][l["sentence_index"]]["text"]
            sub = l["sub_location"][0]
            if l["organ"] == "liver":
                segs = set(re.findall(r"\b[Ss]egments? ([IVX]+|\d)\b", text)) | set(re.findall(r"\band ([IVX]+|\d)\b", text))
                segs = {roman.get(x, x) for x in segs}
                assert sub.split()[1] in segs or (sub == "segment I" and "caudate" in text), (text, sub)
            elif l["organ"].startswith("kidney"):
                word = {"upper pole": r"upper|superior", "lower pole": r"lower|inferior", "interpolar region": r"interpolar|midpole"}[sub]
                assert re.search(word, text), (text, sub)
            else:
                assert sub in text, (text, sub)


def test_normal_and_negative_sentences_are_true(tiny_studies):
    checked = 0
    for s in tiny_studies:
        with_lesion = {l["organ"] for l in s.truth["lesions"]}
        for x in s.truth["sentences"]:
            if x["kind"] not in ("normal", "negative"):
                continue
            checked += 1
            assert not (set(x["organs"]) & with_lesion), (s.study_id, x["text"])
            body = _body(x["text"])
            for organ in ("liver", "pancreas"):
                if organ in with_lesion:
                    assert not ORGAN_RE[organ].search(body), (s.study_id, x["text"])
            if with_lesion & {"kidney_right", "kidney_left"} and re.search(r"kidney|\brenal|hydronephrosis", body, re.I):
                assert not re.search(r"kidneys|both|\brenal", body, re.I), (s.study_id, x["text"])
                for side, organ in (("right", "kidney_right"), ("left", "kidney_left")):
                    if organ in with_lesion:
                        assert side not in body.lower(), (s.study_id, x["text"])
    assert checked > 100


def _fake_lesions(r: np.random.Generator):
    n = int(r.integers(0, 6))
    out = []
    for i in range(n):
        organ = str(r.choice(["liver", "liver", "kidney_right", "kidney_left", "pancreas"]))
        subs = [x for x in SUB_LOCATIONS[organ] if x not in ("uncinate process", "neck")]
        d1 = float(r.uniform(5, 60))
        density = str(r.choice(["hypodense", "hyperdense", "cystic"]))
        enh = {"cystic": ["non-enhancing", None], "hypodense": ["rim-enhancing", "hypoenhancing", None], "hyperdense": ["arterially enhancing", "enhancing", None]}[density]
        out.append(
            SimpleNamespace(
                id=i + 1, organ=organ, sub_location=str(r.choice(subs)), size_mm=[d1, d1 * 0.8, d1 * 0.7], density=density,
                enhancement=enh[int(r.integers(len(enh)))], hu_design=float(r.uniform(0, 20) if density == "cystic" else r.uniform(30, 200)),
            )
        )
    return out


def test_template_variety():
    templates, skeletons = set(), set()
    for seed in range(200):
        r = np.random.default_rng(seed)
        text, sents, links = write_report(r, _fake_lesions(r), 2.5)
        assert [tuple(x["span"]) for x in sents] == split_sentences(text)
        for x in sents:
            if x["kind"] == "finding" and not x["restates"]:
                templates.add(x["template"])
                skeletons.add(re.sub(r"\d+(?:\.\d+)?", "#", _body(x["text"])))
    assert len(templates) >= 25
    assert len(skeletons) >= 25
    # multi-lesion sentences exist (pairs, bilateral kidneys)
    assert any(t.startswith("P") for t in templates) and any(t.startswith("B") for t in templates)


def test_splitter_conventions():
    text = "FINDINGS:\nLiver: A 1.8 cm lesion in segment VII. No other lesion.\n\n1. Cyst, approx. 2 cm.\n2) Done."
    got = [text[a:b] for a, b in split_sentences(text)]
    assert got == ["FINDINGS:", "Liver: A 1.8 cm lesion in segment VII.", "No other lesion.", "Cyst, approx. 2 cm.", "Done."]
