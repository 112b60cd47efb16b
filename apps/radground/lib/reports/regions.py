"""Which of the 10 Reg2RG chest regions (004 §4.1) a report sentence describes.

A region heading (``Lungs:``, ``Pleural spaces:``, ``Osseous structures:``) decides for every
sentence under it; a sentence without one (prose reports, impression items) is classified by
its words, most specific first (a "thyroid nodule" is thyroid before it is a nodule, a "pleural
effusion" is pleura before it is lung). Reg2RG trains and answers region by region, and
MedGrounder's weak pre-training needs sentence -> anatomy, so both read ``Sentence.region``.
"""
from __future__ import annotations

import re
from typing import Optional

from lib.anatomy.labels import CHEST_REGIONS

#: Section heading (lower case, as the splitter reports it) -> region.
REGION_HEADINGS: dict[str, str] = {
    **{h: "lung" for h in ("lungs", "lung", "lung parenchyma", "pulmonary parenchyma", "lungs and airways", "lung bases", "lower chest", "lungs and pleura")},
    **{h: "trachea and bronchi" for h in ("trachea and bronchi", "airways", "central airways", "trachea", "bronchi", "large airways")},
    **{h: "pleura" for h in ("pleura", "pleural spaces", "pleurae", "pleural space")},
    **{h: "mediastinum" for h in ("mediastinum", "mediastinum and hila", "mediastinum and lymph nodes", "hila", "lymph nodes", "vessels", "thoracic vessels")},
    **{h: "heart" for h in ("heart", "heart and pericardium", "cardiac", "cardiovascular", "pericardium")},
    **{h: "esophagus" for h in ("esophagus", "oesophagus")},
    **{h: "thyroid" for h in ("thyroid", "thyroid gland", "lower neck", "neck")},
    **{h: "breast" for h in ("breasts", "breast", "chest wall and breasts", "chest wall", "axillae")},
    **{h: "bone" for h in ("bones", "osseous structures", "musculoskeletal", "bones and soft tissues", "skeleton", "spine")},
    **{h: "abdomen" for h in ("upper abdomen", "visualized upper abdomen", "limited upper abdomen", "abdomen")},
}

#: (pattern, region), most specific first.
_KEYWORDS: list[tuple[str, str]] = [
    (r"thyroid", "thyroid"),
    (r"breasts?|axilla\w*|gynecomastia", "breast"),
    (r"pleura\w*|pneumothorax|empyema", "pleura"),
    (r"pericardi\w*|heart|cardiac|cardiomegaly|coronary", "heart"),
    (r"esophag\w*|oesophag\w*|hiatal|hiatus", "esophagus"),
    (r"trachea\w*|bronch\w*|endobronch\w*|airways?|carina", "trachea and bronchi"),
    (r"lungs?|lobes?|pulmonary|emphysema\w*|consolidation|atelectasis|airspace|opacit\w*|ground[\s-]glass", "lung"),
    (r"mediastin\w*|hil(?:ar|um|a)|lymph\w*|adenopathy|aort\w*|vena cava|thymus", "mediastinum"),
    (r"osseous|bones?|bony|spine|spinal|vertebra\w*|ribs?|sternum|fractures?|osteophyt\w*|degenerative|lytic|sclerotic", "bone"),
    (r"abdomen|abdominal|liver|hepatic|spleen|splenic|adrenal\w*|kidneys?|renal|stomach|gallbladder|pancrea\w*", "abdomen"),
]
_KEYWORD_RE = [(re.compile(rf"\b(?:{p})\b", re.IGNORECASE), region) for p, region in _KEYWORDS]

assert set(REGION_HEADINGS.values()) <= set(CHEST_REGIONS) and {r for _, r in _KEYWORDS} == set(CHEST_REGIONS)


#: Chest findings the abdominal lesion vocabulary has no noun for (a sentence naming one is a finding).
_FINDING_RE = re.compile(
    r"\b(?:effusions?|emphysema\w*|atelectasis|consolidation|opacit(?:y|ies)|cardiomegaly|enlarged|hernia|osteophytes?|"
    r"degenerative|nodules?|mass(?:es)?|lesions?|lymphadenopathy|pneumothorax|thickening|fractures?|calcifications?)\b",
    re.IGNORECASE,
)
_NEGATION_RE = re.compile(r"\b(?:no|without|negative for|free of|absence of|not)\b", re.IGNORECASE)


def finding_term_kind(text: str) -> Optional[str]:
    """'finding' / 'negative' for a sentence naming a chest finding (negated when a trigger precedes it), else None."""
    m = _FINDING_RE.search(text)
    if not m:
        return None
    return "negative" if _NEGATION_RE.search(text, 0, m.start()) else "finding"


def heading_region(section: str) -> Optional[str]:
    """The region a section heading names, or None (FINDINGS, IMPRESSION, unknown headings)."""
    return REGION_HEADINGS.get(" ".join((section or "").lower().split()))


def text_region(text: str) -> Optional[str]:
    """The region a sentence's own words point to, or None."""
    for rx, region in _KEYWORD_RE:
        if rx.search(text):
            return region
    return None


def sentence_region(text: str, section: str) -> Optional[str]:
    """Region of a sentence: its heading's when it has one, else its words'."""
    return heading_region(section) or text_region(text)
