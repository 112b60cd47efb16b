"""Writes a CT abdomen/pelvis report for a synthetic study, with sentence-level ground truth.

Layout: title line, CLINICAL HISTORY, TECHNIQUE, COMPARISON ("None."), FINDINGS (organ by
organ, either with inline organ labels such as ``Liver:`` or as prose paragraphs), IMPRESSION
(a numbered or plain list). Sentences follow ``sentences.split_sentences``.

Truth conventions (what the report parser is scored against):

* every lesion is linked to exactly one FINDINGS sentence (``sentence_index``/``span``): the one
  that states its sub-location and size; a sentence may describe two lesions ("Two hypodense
  lesions in hepatic segments VI and VII measuring 12 and 18 mm, respectively.");
* every lesion sentence names the organ itself (liver/hepatic, pancreas/pancreatic, or
  kidney/renal with the side), independent of any inline label;
* IMPRESSION policy: impression items that restate lesions are kind ``finding`` with their
  ``lesion_ids`` and ``"restates": true``; they may repeat a size. They are never a lesion's
  linked sentence, so a grounder should not count them as new lesions. Recommendations are
  ``non_diagnostic``;
* ``normal``/``negative`` sentences are true for the study and never concern an organ that
  has a lesion (so "No hydronephrosis." is only written when neither kidney has a lesion);
* ``organs`` uses the ABDOMEN_ORGANS keys, plus report-only keys (REPORT_ONLY_ORGANS) for
  structures the organ map does not label.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .phrases import LesionPhrases, cap
from .sentences import split_sentences
from .templates import SINGLE, bilateral_sentence, pair_sentence

REPORT_ONLY_ORGANS = (
    "lung_bases", "pleura", "bile_ducts", "adrenal_glands", "ureters", "urinary_bladder", "stomach", "bowel",
    "appendix", "lymph_nodes", "peritoneum", "pelvis", "bones", "abdominal_wall", "portal_vein", "ivc",
)


@dataclass
class Sent:
    text: str
    section: str
    kind: str
    organs: list = field(default_factory=list)
    lesion_ids: list = field(default_factory=list)
    restates: bool = False
    template: str | None = None
    region: str | None = None  # chest reports: the Reg2RG region the sentence describes


class ReportBuilder:
    """Lines of sentences; rendering yields the text and each sentence's character span."""

    def __init__(self):
        self.lines: list[tuple[str, list[Sent]]] = []

    def line(self, sents: list[Sent], marker: str = ""):
        self.lines.append((marker, list(sents)))

    def blank(self):
        self.lines.append(("", []))

    def render(self) -> tuple[str, list[tuple[Sent, tuple[int, int]]]]:
        out, spans, pos = [], [], 0
        for i, (marker, sents) in enumerate(self.lines):
            if i:
                out.append("\n")
                pos += 1
            if marker:
                out.append(marker)
                pos += len(marker)
            for j, s in enumerate(sents):
                if j:
                    out.append(" ")
                    pos += 1
                spans.append((s, (pos, pos + len(s.text))))
                out.append(s.text)
                pos += len(s.text)
        return "".join(out), spans


# ------------------------------------------------------------------------------ normal text
N, NEG = "normal", "negative"
NORMALS = {
    "lower_chest": [("The visualized lung bases are clear.", N, ["lung_bases"]), ("Lung bases are clear.", N, ["lung_bases"]), ("No pleural effusion.", NEG, ["pleura"]), ("The lung bases are clear without pleural effusion.", N, ["lung_bases", "pleura"])],
    "liver": [("The liver is normal in size and attenuation.", N, ["liver"]), ("The liver is normal in size and contour without focal lesion.", N, ["liver"]), ("Normal hepatic size and morphology.", N, ["liver"]), ("The liver is unremarkable.", N, ["liver"]), ("The liver enhances homogeneously.", N, ["liver"])],
    "liver_neg": [("No focal hepatic lesion.", NEG, ["liver"]), ("No focal liver lesion is identified.", NEG, ["liver"]), ("There is no suspicious hepatic mass.", NEG, ["liver"])],
    "biliary": [("The gallbladder is unremarkable.", N, ["gallbladder"]), ("The gallbladder is normally distended without wall thickening.", N, ["gallbladder"]), ("No cholelithiasis.", NEG, ["gallbladder"])],
    "biliary2": [("No intrahepatic or extrahepatic biliary ductal dilatation.", NEG, ["bile_ducts"]), ("The common bile duct is normal in caliber.", N, ["bile_ducts"]), ("No biliary dilatation.", NEG, ["bile_ducts"])],
    "spleen": [("The spleen is normal in size.", N, ["spleen"]), ("Unremarkable spleen.", N, ["spleen"]), ("No splenomegaly.", NEG, ["spleen"]), ("The spleen is homogeneous and normal in size.", N, ["spleen"])],
    "pancreas": [("Unremarkable pancreas.", N, ["pancreas"]), ("The pancreas is normal in appearance.", N, ["pancreas"]), ("The pancreas enhances homogeneously without focal lesion.", N, ["pancreas"]), ("No pancreatic mass or ductal dilatation.", NEG, ["pancreas"])],
    "pancreas_neg": [("No peripancreatic inflammation.", NEG, ["pancreas"]), ("The pancreatic duct is not dilated.", N, ["pancreas"])],
    "adrenals": [("The adrenal glands are unremarkable.", N, ["adrenal_glands"]), ("Normal adrenal glands.", N, ["adrenal_glands"]), ("No adrenal nodule.", NEG, ["adrenal_glands"])],
    "kidneys": [("The kidneys enhance symmetrically.", N, ["kidney_right", "kidney_left"]), ("The kidneys are normal in size and enhance symmetrically.", N, ["kidney_right", "kidney_left"]), ("Both kidneys are unremarkable.", N, ["kidney_right", "kidney_left"])],
    "kidneys_neg": [("No hydronephrosis.", NEG, ["kidney_right", "kidney_left"]), ("No hydronephrosis or nephrolithiasis.", NEG, ["kidney_right", "kidney_left"]), ("No renal mass or hydronephrosis.", NEG, ["kidney_right", "kidney_left"])],
    "ureters": [("The ureters are unremarkable.", N, ["ureters"]), ("No ureteral calculi.", NEG, ["ureters"])],
    "vessels": [("The abdominal aorta is normal in caliber.", N, ["aorta"]), ("No abdominal aortic aneurysm.", NEG, ["aorta"]), ("The portal vein and IVC are patent.", N, ["portal_vein", "ivc"])],
    "bowel": [("The stomach and small bowel are unremarkable.", N, ["stomach", "bowel"]), ("No bowel obstruction or bowel wall thickening.", NEG, ["bowel"]), ("The appendix is normal.", N, ["appendix"]), ("The colon is unremarkable.", N, ["bowel"])],
    "nodes": [("No abdominal or pelvic lymphadenopathy.", NEG, ["lymph_nodes"]), ("No enlarged retroperitoneal or mesenteric lymph nodes.", NEG, ["lymph_nodes"])],
    "peritoneum": [("No ascites or free air.", NEG, ["peritoneum"]), ("No free fluid.", NEG, ["peritoneum"]), ("No intraperitoneal free air.", NEG, ["peritoneum"])],
    "pelvis": [("The urinary bladder is unremarkable.", N, ["urinary_bladder"]), ("The urinary bladder is well distended and unremarkable.", N, ["urinary_bladder"]), ("No pelvic mass.", NEG, ["pelvis"])],
    "bones": [("No aggressive osseous lesion.", NEG, ["bones"]), ("The osseous structures are unremarkable.", N, ["bones"]), ("No suspicious lytic or blastic lesion.", NEG, ["bones"]), ("The abdominal wall is intact.", N, ["abdominal_wall"])],
}
LABELS = {
    "lower_chest": ["Lower chest", "Lung bases"],
    "liver": ["Liver"],
    "biliary": ["Gallbladder and bile ducts", "Biliary", "Gallbladder"],
    "spleen": ["Spleen"],
    "pancreas": ["Pancreas"],
    "adrenals": ["Adrenal glands", "Adrenals"],
    "kidneys": ["Kidneys and ureters", "Kidneys", "Genitourinary"],
    "vessels": ["Vasculature", "Vessels"],
    "bowel": ["Bowel", "GI tract", "Gastrointestinal"],
    "nodes": ["Lymph nodes"],
    "peritoneum": ["Peritoneum", "Peritoneum and retroperitoneum"],
    "pelvis": ["Pelvis", "Pelvic organs"],
    "bones": ["Bones and soft tissues", "Musculoskeletal", "Bones"],
}
HISTORY = [
    "Abdominal pain.", "Right upper quadrant pain.", "Weight loss.", "Elevated liver enzymes.", "Hematuria.",
    "Staging of known colon cancer.", "Left flank pain.", "Fever and leukocytosis.", "Nausea and vomiting.",
    "Abdominal pain, evaluate for abscess.", "Follow-up of abnormal ultrasound.", "Epigastric pain.",
]
NUM_WORDS = {2: "Two", 3: "Three", 4: "Four", 5: "Five"}


def _pick(r, key, k=1):
    pool = NORMALS[key]
    idx = r.choice(len(pool), size=min(k, len(pool)), replace=False)
    return [Sent(pool[i][0], "findings", pool[i][1], list(pool[i][2])) for i in sorted(idx)]


def _kidney_normals(r, has):
    """True normal/negative kidney statements given which kidneys have lesions."""
    if not has["kidney_right"] and not has["kidney_left"]:
        out = _pick(r, "kidneys")
        if r.random() < 0.7:
            out += _pick(r, "kidneys_neg")
        return out
    out = []
    for side, key in (("right", "kidney_right"), ("left", "kidney_left")):
        if has[key]:
            continue
        u = r.random()
        if u < 0.4:
            out.append(Sent(f"The {side} kidney is unremarkable.", "findings", N, [key]))
        elif u < 0.7:
            out.append(Sent(f"The {side} kidney is normal in size and enhancement.", "findings", N, [key]))
        else:
            out.append(Sent(f"No {side} hydronephrosis.", "findings", NEG, [key]))
    return out


def _lesion_sentences(r, organ_key: str, phr: list[LesionPhrases], allow_pair=True) -> list[Sent]:
    """Findings sentences for the lesions of one organ (a kidney side, the liver, the pancreas)."""
    out: list[Sent] = []
    order = sorted(phr, key=lambda p: -p.les.size_mm[0]) if r.random() < 0.6 else list(phr)
    i = 0
    while i < len(order):
        p = order[i]
        if allow_pair and i + 1 < len(order) and order[i + 1].sub != p.sub and r.random() < 0.45:
            q = order[i + 1]
            if q.les.density == p.les.density and r.random() < 0.7:  # radiologists group alike lesions
                q.adj, q.stated_density = p.adj, p.stated_density
                if p.noun != "mass" or q.les.size_mm[0] >= 20:
                    q.noun = p.noun
            tid, text = pair_sentence(r, p, q)
            out.append(Sent(text, "findings", "finding", [p.organ], [p.les.id, q.les.id], template=tid))
            i += 2
            continue
        tid = str(r.choice(sorted(SINGLE)))
        text = SINGLE[tid](p, {"first_in_organ": i == 0})
        out.append(Sent(text, "findings", "finding", [p.organ], [p.les.id], template=tid))
        i += 1
    return out


def _impression_items(r, by_organ: dict[str, list[LesionPhrases]]) -> list[list[Sent]]:
    items: list[list[Sent]] = []
    for organ in ("liver", "pancreas", "kidney_right", "kidney_left"):
        ph = by_organ.get(organ, [])
        if not ph:
            continue
        ids = [p.les.id for p in ph]
        big = max(ph, key=lambda p: p.rep_size.mm[0] if p.rep_size else p.les.size_mm[0])
        big_mm = big.rep_size.mm[0] if big.rep_size else big.les.size_mm[0]
        adjname = {"liver": "hepatic", "pancreas": "pancreatic", "kidney_right": "right renal", "kidney_left": "left renal"}[organ]
        dens = big.les.density
        word = {"cystic": "cyst", "hypodense": "hypodense lesion", "hyperdense": "hyperenhancing lesion"}[dens]
        if len(ph) == 1:
            u = r.random()
            if u < 0.35:
                sz = f"{round(big_mm / 10.0, 1):.1f} cm"
                text = f"{sz} {adjname} {word} ({big.sub})"
            elif u < 0.7:
                text = f"{cap(adjname)} {word} in {'segment ' + big.seg if organ == 'liver' else 'the ' + big.sub}"
            else:
                text = f"{cap(word)} in the {big.organ_np()}"
            hedge = {"cystic": ", likely benign", "hypodense": ", indeterminate", "hyperdense": ", indeterminate"}[dens] if r.random() < 0.6 else ""
            text = cap(text) + hedge + "."
        else:
            text = f"{NUM_WORDS[len(ph)]} {adjname} lesions, the largest in {big.sub_np()} measuring {round(big_mm / 10.0, 1):.1f} cm."
        item = [Sent(text, "impression", "finding", [organ], ids, restates=True)]
        if dens != "cystic" and r.random() < 0.6:
            rec = {
                "liver": "Recommend MRI of the abdomen for further characterization.",
                "pancreas": "Recommend dedicated pancreatic protocol CT or MRI.",
                "kidney_right": "Renal mass protocol CT or MRI is recommended.",
                "kidney_left": "Renal mass protocol CT or MRI is recommended.",
            }[organ]
            item.append(Sent(rec, "impression", "non_diagnostic"))
        items.append(item)
    if not items:
        pool = [("No acute abnormality in the abdomen or pelvis.", NEG, []), ("No focal hepatic, renal, or pancreatic lesion.", NEG, ["liver", "kidney_right", "kidney_left", "pancreas"]), ("Unremarkable CT of the abdomen and pelvis.", N, [])]
        t, k, o = pool[int(r.integers(len(pool)))]
        items.append([Sent(t, "impression", k, list(o))])
    elif r.random() < 0.5:
        items.append([Sent("No other acute abnormality.", "impression", NEG, [])])
    return items


def add_impression(b: ReportBuilder, r: np.random.Generator, items: list[list[Sent]]) -> None:
    """The IMPRESSION block: a header line, then one line per item (numbered in 75 % of reports)."""
    b.blank()
    b.line([Sent("IMPRESSION:", "impression", "non_diagnostic")])
    numbered = r.random() < 0.75
    for n, item in enumerate(items, start=1):
        b.line(item, marker=f"{n}. " if numbered else "")


def render_with_truth(b: ReportBuilder) -> tuple[str, list[dict]]:
    """Report text and one truth record per sentence; the spans must follow ``split_sentences``."""
    text, spans = b.render()
    if split_sentences(text) != [sp for _, sp in spans]:
        raise AssertionError("report sentences do not follow the splitting convention")
    sentences = []
    for i, (s, (st, en)) in enumerate(spans):
        assert text[st:en] == s.text
        sentences.append({
            "index": i, "text": s.text, "span": [st, en], "section": s.section, "region": s.region, "kind": s.kind,
            "organs": list(s.organs), "lesion_ids": list(s.lesion_ids), "restates": bool(s.restates), "template": s.template,
        })
    return text, sentences


def write_report(r: np.random.Generator, lesions: list, slice_mm: float) -> tuple[str, list[dict], dict[int, dict]]:
    """Report text, truth sentences (with spans) and per-lesion truth links for ``lesions``."""
    phr = [LesionPhrases(les, r) for les in lesions]
    by_organ: dict[str, list[LesionPhrases]] = {}
    for p in phr:
        by_organ.setdefault(p.organ, []).append(p)
    has = {k: bool(by_organ.get(k)) for k in ("liver", "kidney_right", "kidney_left", "pancreas")}

    b = ReportBuilder()
    caps_labels = r.random() < 0.35
    structured = r.random() < 0.6
    title = str(r.choice(["CT ABDOMEN AND PELVIS WITH CONTRAST", "CT ABDOMEN AND PELVIS WITH IV CONTRAST", "CT OF THE ABDOMEN AND PELVIS WITH INTRAVENOUS CONTRAST"]))
    b.line([Sent(("EXAMINATION: " if r.random() < 0.5 else "") + title, "title", "non_diagnostic")])
    b.blank()
    hl = str(r.choice(["CLINICAL HISTORY", "INDICATION", "HISTORY"]))
    b.line([Sent(f"{hl}: {r.choice(HISTORY)}", "history", "non_diagnostic")])
    b.blank()
    arterial = any(p.plan_enh == "arterially enhancing" for p in phr)
    ml = int(r.choice([80, 90, 100, 110, 125]))
    phase = "late arterial and portal venous phases" if arterial else "the portal venous phase"
    tech = [
        Sent(f"TECHNIQUE: Axial images of the abdomen and pelvis were obtained after the administration of {ml} mL of intravenous contrast.", "technique", "non_diagnostic"),
        Sent(f"Images were acquired in {phase} and reconstructed at {slice_mm:g} mm slice thickness.", "technique", "non_diagnostic"),
    ]
    if r.random() < 0.6:
        tech.append(Sent("Coronal and sagittal reformatted images were reviewed.", "technique", "non_diagnostic"))
    if r.random() < 0.4:
        tech.append(Sent("Automated exposure control and iterative reconstruction were used for dose reduction.", "technique", "non_diagnostic"))
    b.line(tech)
    b.blank()
    b.line([Sent("COMPARISON: None.", "comparison", "non_diagnostic")])
    b.blank()
    b.line([Sent("FINDINGS:", "findings", "non_diagnostic")])

    # organ blocks in reading order
    blocks: list[tuple[str, list[Sent]]] = []
    blocks.append(("lower_chest", _pick(r, "lower_chest")))
    if has["liver"]:
        blocks.append(("liver", _lesion_sentences(r, "liver", by_organ["liver"])))
    else:
        s = _pick(r, "liver")
        if r.random() < 0.6 and "lesion" not in s[0].text:  # avoid saying it twice
            s += _pick(r, "liver_neg")
        blocks.append(("liver", s))
    blocks.append(("biliary", _pick(r, "biliary") + (_pick(r, "biliary2") if r.random() < 0.6 else [])))
    blocks.append(("spleen", _pick(r, "spleen")))
    if has["pancreas"]:
        blocks.append(("pancreas", _lesion_sentences(r, "pancreas", by_organ["pancreas"])))
    else:
        s = _pick(r, "pancreas")
        if r.random() < 0.3:
            s += [x for x in _pick(r, "pancreas_neg") if not ("duct" in x.text and "duct" in s[0].text)]
        blocks.append(("pancreas", s))
    blocks.append(("adrenals", _pick(r, "adrenals")))
    kid: list[Sent] = []
    kr, kl = by_organ.get("kidney_right", []), by_organ.get("kidney_left", [])
    if kr and kl and r.random() < 0.35:
        tid, text = bilateral_sentence(r, kr[0], kl[0])
        kid.append(Sent(text, "findings", "finding", ["kidney_right", "kidney_left"], [kr[0].les.id, kl[0].les.id], template=tid))
        kr, kl = kr[1:], kl[1:]
    for ph in (kr, kl) if r.random() < 0.7 else (kl, kr):
        if ph:
            kid += _lesion_sentences(r, ph[0].organ, ph)
    kid += _kidney_normals(r, has)
    if r.random() < 0.4:
        kid += _pick(r, "ureters")
    blocks.append(("kidneys", kid))
    blocks.append(("vessels", _pick(r, "vessels")))
    blocks.append(("bowel", _pick(r, "bowel", 1 + int(r.random() < 0.4))))
    if r.random() < 0.8:
        blocks.append(("nodes", _pick(r, "nodes")))
    if r.random() < 0.7:
        blocks.append(("peritoneum", _pick(r, "peritoneum")))
    blocks.append(("pelvis", _pick(r, "pelvis")))
    blocks.append(("bones", _pick(r, "bones", 1 + int(r.random() < 0.3))))

    if structured:
        for key, sents in blocks:
            if not sents:
                continue
            label = str(r.choice(LABELS[key]))
            label = label.upper() if caps_labels else label
            sents = list(sents)
            sents[0] = Sent(f"{label}: {sents[0].text}", **{k: v for k, v in sents[0].__dict__.items() if k != "text"})
            b.line(sents)
    else:
        flat = [s for _, ss in blocks for s in ss]
        n_par = int(r.integers(2, 5))
        cuts = sorted(r.choice(np.arange(1, len(flat)), size=n_par - 1, replace=False)) if len(flat) > n_par else []
        prev = 0
        for c in list(cuts) + [len(flat)]:
            b.line(flat[prev:c])
            prev = c
    add_impression(b, r, _impression_items(r, by_organ))
    text, sentences = render_with_truth(b)
    links: dict[int, dict] = {}
    for sent in sentences:
        if sent["kind"] == "finding" and not sent["restates"]:
            for lid in sent["lesion_ids"]:
                links[lid] = {"sentence_index": sent["index"], "span": list(sent["span"]), "template": sent["template"]}
    for p in phr:
        links[p.les.id].update(p.record())
    return text, sentences, links
