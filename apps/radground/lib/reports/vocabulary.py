"""Word lists and patterns of CT report language, kept apart from the parsing logic.

Every list here is data a radiologist can review: organ words and the canonical keys of
:mod:`lib.anatomy.labels` they map to, sub-location phrases, lesion nouns, density and enhancement
words, and the NegEx-style trigger lists (Chapman et al. 2001) used for negation scope. All patterns
are plain alternations with bounded repeats (no nested unbounded quantifiers), so matching is
linear in the text length.
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

from lib.anatomy.labels import LIVER_SEGMENTS

I = re.IGNORECASE


def _alt(words: Iterable[str]) -> str:
    """Alternation of phrases, longest first, spaces matching any run of spaces/hyphens."""
    parts = sorted(set(words), key=len, reverse=True)
    return "|".join(w.replace(" ", r"[\s-]+") for w in parts)


# --------------------------------------------------------------------------------------- organs
#: (pattern, organ family). Kidney/adrenal mentions get their side from nearby "left"/"right".
#: Keys beyond the organ map (ABDOMEN_ORGANS) follow the synthetic reports' report-only keys
#: (lung_bases, bile_ducts, adrenal_glands, lymph_nodes, bones, ...), so both spell them alike.
ORGAN_PATTERNS: list[tuple[str, str]] = [
    (r"gall[\s-]?bladders?|cholecyst\w*|cholelithiasis", "gallbladder"),
    (
        r"(?:intra-?hepatic[\s-]+(?:(?:and|or|/)[\s-]+extra-?hepatic[\s-]+)?)?(?:biliary|bile[\s-]+ducts?|common[\s-]+bile[\s-]+duct|cbd)"
        r"|extra-?hepatic[\s-]+(?:biliary|bile[\s-]+ducts?)|choledoch\w*",
        "bile_ducts",
    ),
    (r"livers?|hepatic(?![\s-]+flexure)|intra-?hepatic|hepatocellular|caudate|couinaud|hepatomegaly", "liver"),
    (r"spleen|splenic(?![\s-]+flexure)|splenomegaly", "spleen"),
    (r"kidneys?|renal|nephric|nephrectomy|hydronephrosis|nephrolithiasis", "kidney"),
    (r"pancreas|pancreatic\w*|pancreatico\w*|uncinate|peripancreatic", "pancreas"),
    (r"abdominal aortic|aorta|aortic", "aorta"),
    (r"vertebra[el]?|vertebral|spine|spinal", "vertebra"),
    (r"adrenal glands?|adrenals?", "adrenal"),
    (r"lung bases?|lungs?|pulmonary", "lung_bases"),
    (r"pleura|pleural", "pleura"),
    (r"urinary bladder|bladder", "urinary_bladder"),
    (r"ureters?|ureteral|ureteric", "ureters"),
    (r"lymph nodes?|lymphadenopathy|adenopathy|nodal", "lymph_nodes"),
    (r"osseous|bones?|bony|skeletal|musculoskeletal|lytic|blastic|sclerotic", "bones"),
    (r"stomach|gastric", "stomach"),
    (r"small bowel|large bowel|bowel|colon|colonic|duodenum|duodenal", "bowel"),
    (r"appendix|appendiceal", "appendix"),
    (r"portal vein|portal venous system", "portal_vein"),
    (r"ivc|inferior vena cava", "ivc"),
    (r"ascites|free air|free fluid|pneumoperitoneum|peritoneum|peritoneal|intraperitoneal", "peritoneum"),
    (r"(?<!abdomen and )(?<!abdomen/)pelvis|pelvic", "pelvis"),
    (r"abdominal wall", "abdominal_wall"),
]
ORGAN_RE = re.compile(
    r"\b(?:" + "|".join(f"(?P<o{i}>{p})" for i, (p, _) in enumerate(ORGAN_PATTERNS)) + r")\b", I
)
#: Organ families whose canonical key carries the side.
LATERAL_FAMILIES = {
    "kidney": ("kidney_left", "kidney_right", "kidney"),
    "adrenal": ("adrenal_left", "adrenal_right", "adrenal_glands"),
}

SIDE_RE = re.compile(r"\b(left|right|bilateral|both|bilaterally|lt|rt)\b", I)
_SIDE_WORDS = {"left": "left", "lt": "left", "right": "right", "rt": "right", "bilateral": "bilateral", "both": "bilateral", "bilaterally": "bilateral"}

#: Words after "left"/"right" that tie the side to something other than a kidney.
NON_KIDNEY_SIDE_RE = re.compile(
    r"\b(?:left|right)[\s-]+(?:(?:hepatic[\s-]+)?lobe|hepatic|liver|adrenal|lung|colon|colic|hemidiaphragm|"
    r"portal|ovary|ovarian|iliac|inguinal|lower[\s-]+quadrant|upper[\s-]+quadrant|pleural|para-?aortic|"
    r"lateral[\s-]+segment|gonadal|psoas|breast|hip|groin|chest|side[\s-]+of[\s-]+the[\s-]+liver)\b",
    I,
)


def organ_key(family: str, side: Optional[str]) -> str:
    """Canonical organ key for a family and a side ('left'/'right'/None)."""
    if family in LATERAL_FAMILIES:
        left, right, unknown = LATERAL_FAMILIES[family]
        return left if side == "left" else right if side == "right" else unknown
    return family


def organ_family(key: str) -> str:
    """'kidney_left' -> 'kidney'; other keys unchanged."""
    for fam, keys in LATERAL_FAMILIES.items():
        if key in keys:
            return fam
    return key


def side_word(word: str) -> str:
    return _SIDE_WORDS[word.lower()]


#: Free-text organ names (LLM output, headers) -> canonical key.
ORGAN_ALIASES: dict[str, str] = {
    "liver": "liver", "hepatic": "liver", "spleen": "spleen", "splenic": "spleen",
    "kidney": "kidney", "kidneys": "kidney", "renal": "kidney",
    "left kidney": "kidney_left", "kidney left": "kidney_left", "left renal": "kidney_left", "kidney_left": "kidney_left",
    "right kidney": "kidney_right", "kidney right": "kidney_right", "right renal": "kidney_right", "kidney_right": "kidney_right",
    "pancreas": "pancreas", "pancreatic": "pancreas", "gallbladder": "gallbladder", "gall bladder": "gallbladder",
    "aorta": "aorta", "vertebra": "vertebra", "spine": "vertebra", "adrenal": "adrenal_glands",
    "left adrenal": "adrenal_left", "right adrenal": "adrenal_right", "lung": "lung_bases", "bladder": "urinary_bladder",
}


def canonical_organ(name: str) -> str:
    """Best canonical key for a free-text organ name ('Left Kidney' -> 'kidney_left')."""
    s = " ".join(re.sub(r"[_\-]", " ", name.strip().lower()).split())
    if s in ORGAN_ALIASES:
        return ORGAN_ALIASES[s]
    if s.replace(" ", "_") in ORGAN_ALIASES:
        return ORGAN_ALIASES[s.replace(" ", "_")]
    m = ORGAN_RE.search(s)
    if not m:
        return s.replace(" ", "_")
    fam = ORGAN_PATTERNS[int(m.lastgroup[1:])][1]
    side = None
    sm = SIDE_RE.search(s)
    if sm:
        side = side_word(sm.group(1))
    return organ_key(fam, side if side in ("left", "right") else None)


#: Words before an organ that make it a neighbour, not the lesion's organ ("abutting the liver").
RELATIONAL_RE = re.compile(
    r"\b(?:adjacent|abutting|abuts|near|nearby|next|close|compress(?:es|ing)?|displac(?:es|ing)|invad(?:es|ing)|"
    r"encas(?:es|ing)|contact(?:s|ing)?|along|anterior|posterior|medial|lateral|superior|inferior|above|below|"
    r"between|than|toward|towards|into|beyond|indent(?:s|ing)|inseparable|extend(?:s|ing)|involv(?:es|ing)|"
    r"obstruct(?:s|ing)|compared|relative)\b\W+(?:\w+\W+){0,2}$",
    I,
)

# ---------------------------------------------------------------------------------- sub-locations
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8}
ROMAN_OF = {i + 1: r for i, r in enumerate(LIVER_SEGMENTS)}
#: A segment number: Roman or Arabic, optional a/b; an Arabic digit that starts a size ("4.3 cm",
#: "4 mm") is not a segment ("segment II and 4.3 cm").
_SEG_ITEM = r"(?:(?:viii|vii|vi|iv|v|iii|ii|i)[ab]?|[1-8][ab]?(?!\.\d)(?!\s?-?\s?(?:mm|cm)))(?![\w])"
#: "segment 7", "segments VI and VII", "hepatic segment IVa", "seg. 6/7", "segments 5-8".
LIVER_SEGMENT_RE = re.compile(
    r"\b(?:couinaud\s+)?seg(?:ment)?s?\.?\s*(" + _SEG_ITEM
    + r"(?:\s*(?:,\s*and|,\s*or|,|/|and|or|&|-|to|through)\s*" + _SEG_ITEM + r"){0,7})",
    I,
)
_SEG_TOKEN_RE = re.compile(r"(viii|vii|vi|iv|v|iii|ii|i|[1-8])[ab]?|(-|to|through)", I)
LIVER_LOBE_RE = re.compile(
    r"\b(?:(right|left)[\s-]+(?:hepatic[\s-]+)?lobe(?:[\s-]+of[\s-]+the[\s-]+liver)?|(caudate)(?:[\s-]+lobe)?)\b", I
)
KIDNEY_PART_RE = re.compile(
    r"\b(?:(upper|superior)[\s-]*(?:pole|polar)|(lower|inferior)[\s-]*(?:pole|polar)|"
    r"(interpolar|mid[\s-]*(?:pole|polar|portion|kidney|region|third|renal|zone)|middle[\s-]+(?:third|portion|pole))|"
    r"(mid)(?=[\s-]+(?:left|right)[\s-]+kidney))\b",
    I,
)
#: "the lower and upper poles of the left kidney": two parts in one phrase.
KIDNEY_POLE_PAIR_RE = re.compile(
    r"\b(upper|superior|lower|inferior)[\s-]+(?:and|or|&|to)[\s-]+(upper|superior|lower|inferior)[\s-]+poles\b", I
)
_POLE_WORD = {"upper": "upper pole", "superior": "upper pole", "lower": "lower pole", "inferior": "lower pole"}


def kidney_parts(text: str) -> list[tuple[int, list[str]]]:
    """(position, canonical parts) of every kidney-part phrase in ``text``, in order."""
    out: list[tuple[int, list[str]]] = []
    pairs = []
    for m in KIDNEY_POLE_PAIR_RE.finditer(text):
        names = list(dict.fromkeys([_POLE_WORD[m.group(1).lower()], _POLE_WORD[m.group(2).lower()]]))
        out.append((m.start(), names))
        pairs.append((m.start(), m.end()))
    for m in KIDNEY_PART_RE.finditer(text):
        if not any(a <= m.start() < b for a, b in pairs):
            out.append((m.start(), [kidney_part(m)]))
    out.sort(key=lambda x: x[0])
    return out


PANCREAS_PART_RE = re.compile(r"\b(head|uncinate(?:[\s-]+process)?|neck|body|tail)\b", I)
#: A bare pancreas part names the pancreas only when written as such ("pancreatic tail").
PANCREAS_EXPLICIT_PART_RE = re.compile(
    r"\b(?:pancreatic[\s-]+(?:head|neck|body|tail)|(?:head|neck|body|tail)[\s-]+of[\s-]+(?:the[\s-]+)?pancreas|uncinate)\b",
    I,
)


def liver_segments(items: str) -> list[str]:
    """'VI and VII' -> ['segment VI', 'segment VII']; '5-8' expands the range; 'IVa' -> 'segment IV'."""
    nums: list[int] = []
    pending_range = False
    for m in _SEG_TOKEN_RE.finditer(items):
        if m.group(2):
            pending_range = bool(nums)
            continue
        tok = m.group(1).lower()
        n = int(tok) if tok.isdigit() else _ROMAN[tok]
        if pending_range and nums and nums[-1] < n <= 8:
            nums.extend(range(nums[-1] + 1, n + 1))
        else:
            nums.append(n)
        pending_range = False
    out: list[str] = []
    for n in nums:
        s = f"segment {ROMAN_OF[n]}"
        if s not in out:
            out.append(s)
    return out


def kidney_part(m: re.Match) -> str:
    if m.group(1):
        return "upper pole"
    if m.group(2):
        return "lower pole"
    return "interpolar region"


def pancreas_part(word: str) -> str:
    w = word.lower()
    return "uncinate process" if w.startswith("uncinate") else w


def normalize_sub_location(organ: str, text: str) -> list[str]:
    """Free-text sub-location(s) (LLM output, e.g. 'seg 7', 'inferior pole') -> canonical names."""
    fam = organ_family(organ)
    t = text.strip()
    out: list[str] = []
    if fam == "liver" or fam not in ("kidney", "pancreas"):
        for m in LIVER_SEGMENT_RE.finditer(t):
            out += [s for s in liver_segments(m.group(1)) if s not in out]
        if not out:
            bare = re.fullmatch(r"\s*(" + _SEG_ITEM + r")\s*", t, I)
            if bare and fam == "liver":
                out = liver_segments(bare.group(1))
        for m in LIVER_LOBE_RE.finditer(t):
            s = "segment I" if m.group(2) else f"{m.group(1).lower()} lobe"
            if s not in out:
                out.append(s)
    if fam == "kidney" or (not out and fam not in ("liver", "pancreas")):
        for _, names in kidney_parts(t):
            out += [x for x in names if x not in out]
    if fam == "pancreas":
        for m in PANCREAS_PART_RE.finditer(t):
            s = pancreas_part(m.group(1))
            if s not in out:
                out.append(s)
    if not out and t:
        out = [" ".join(t.lower().split())]
    return out


# -------------------------------------------------------------------------------- lesion nouns
#: (pattern, normalised lesion type, implied density). Plural forms are listed in PLURAL_RE.
LESION_PATTERNS: list[tuple[str, str, Optional[str]]] = [
    (r"hepatocellular carcinomas?|hccs?", "hepatocellular carcinoma", None),
    (r"renal cell carcinomas?|rccs?", "renal cell carcinoma", None),
    (r"focal nodular hyperplasia|fnh", "focal nodular hyperplasia", None),
    (r"intraductal papillary mucinous neoplasms?|ipmns?", "IPMN", None),
    (r"(?:adeno)?carcinomas?", "carcinoma", None),
    (r"metastas[ie]s|metastatic (?:lesions?|deposits?|foci|disease|nodules?)|mets", "metastasis", None),
    (r"ha?emangiomas?|ha?emangiomata", "hemangioma", None),
    (r"angiomyolipomas?|amls?", "angiomyolipoma", None),
    (r"oncocytomas?", "oncocytoma", None),
    (r"adenomas?", "adenoma", None),
    (r"pseudocysts?", "pseudocyst", "cystic"),
    (r"cysts?", "cyst", "cystic"),
    (r"lesions?", "lesion", None),
    (r"mass(?:es)?(?![\s-]+effect)", "mass", None),
    (r"nodules?", "nodule", None),
    (r"tumou?rs?", "tumor", None),
    (r"neoplasms?", "neoplasm", None),
    (r"malignanc(?:y|ies)", "malignancy", None),
    (r"abscess(?:es)?", "abscess", None),
    (r"hypodensit(?:y|ies)|hypoattenuations?|hypo-?attenuating foc(?:us|i)", "lesion", "hypodense"),
    (r"hyperdensit(?:y|ies)", "lesion", "hyperdense"),
    (r"foc(?:us|i)", "lesion", None),
    (r"lymphomas?", "lymphoma", None),
    (r"hamartomas?", "hamartoma", None),
    (r"deposits?|implants?", "metastasis", None),
]
LESION_RE = re.compile(
    r"\b(?:" + "|".join(f"(?P<l{i}>{p})" for i, (p, _, _) in enumerate(LESION_PATTERNS)) + r")\b", I
)
#: Nouns that name a lesion only with a density/enhancement word just before ("hypodense area").
WEAK_LESION_RE = re.compile(r"\b(areas?|regions?|zones?|abnormalit(?:y|ies)|opacit(?:y|ies)|densit(?:y|ies))\b", I)
PLURAL_RE = re.compile(
    r"(?:lesions|masses|nodules|cysts|pseudocysts|tumou?rs|neoplasms|metastases|mets|hemangiomas|haemangiomas|"
    r"ha?emangiomata|foci|hypodensities|hyperdensities|hypoattenuations|carcinomas|adenomas|angiomyolipomas|amls|"
    r"oncocytomas|abscesses|malignancies|deposits|implants|areas|regions|zones|abnormalities|opacities|densities|"
    r"hccs|rccs|ipmns|lymphomas|hamartomas|metastatic (?:lesions|deposits|foci|nodules))$",
    I,
)


def lesion_type_of(m: re.Match) -> tuple[str, Optional[str]]:
    """(normalised type, implied density) of a LESION_RE match."""
    _, typ, dens = LESION_PATTERNS[int(m.lastgroup[1:])]
    return typ, dens


# ------------------------------------------------------------------------------ density / enhancement
DENSITY_PATTERNS: list[tuple[str, str]] = [
    (r"hypo-?dense|hypo-?attenuat\w*|low[\s-]+(?:attenuation|density)|hypodensit(?:y|ies)|hypo-?enhancing[\s-]+hypodense", "hypodense"),
    (r"hyper-?dense|hyper-?attenuat\w*|high[\s-]+(?:attenuation|density)|hyperdensit(?:y|ies)", "hyperdense"),
    (r"iso-?dense|iso-?attenuat\w*", "isodense"),
    (r"cystic|fluid[\s-]+(?:attenuation|density)|water[\s-]+(?:attenuation|density)|simple[\s-]+appearing", "cystic"),
    (r"fat[\s-]+(?:containing|density|attenuation)|fatty", "fat"),
    (r"solid", "solid"),
    (r"calcified", "calcified"),
]
DENSITY_RE = re.compile(r"\b(?:" + "|".join(f"(?P<d{i}>{p})" for i, (p, _) in enumerate(DENSITY_PATTERNS)) + r")\b", I)

ENHANCEMENT_PATTERNS: list[tuple[str, str]] = [
    (
        r"non-?enhancing|un-?enhancing|(?:without|no|lacks?|lacking|absent)\s+(?:\w+\s+){0,2}enhancement|"
        r"(?:does|did)\s+not\s+(?:\w+\s+)?enhance|no\s+enhancing",
        "non-enhancing",
    ),
    (r"rim[\s-]+enhanc\w*|peripheral(?:ly)?[\s-]+(?:nodular[\s-]+)?enhanc\w*|ring[\s-]+enhanc\w*", "rim-enhancing"),
    (
        r"hyper-?enhanc\w*|arterial(?:ly)?(?:[\s-]+phase)?[\s-]+(?:hyper)?enhanc\w*|hypervascular|aphe",
        "hyperenhancing",
    ),
    (r"hypo-?enhanc\w*|hypovascular|poorly[\s-]+enhancing", "hypoenhancing"),
    (r"heterogeneous(?:ly)?[\s-]+enhanc\w*", "heterogeneously enhancing"),
    (r"enhanc(?:ing|es|ement|ed)", "enhancing"),
]
ENHANCEMENT_RE = re.compile(
    r"\b(?:" + "|".join(f"(?P<e{i}>{p})" for i, (p, _) in enumerate(ENHANCEMENT_PATTERNS)) + r")\b", I
)


def density_of(m: re.Match) -> str:
    return DENSITY_PATTERNS[int(m.lastgroup[1:])][1]


def enhancement_of(m: re.Match) -> str:
    return ENHANCEMENT_PATTERNS[int(m.lastgroup[1:])][1]


# ---------------------------------------------------------------------------------------- counts
NUMBER_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "single": 1, "solitary": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "pair": 2,
    "couple": 2,
}
#: Vague plurals: the unit gets count=2 and ``count_is_lower_bound=True`` ("at least two").
VAGUE_COUNT_WORDS = ("multiple", "several", "numerous", "innumerable", "countless", "few", "scattered",
                     "various", "many", "multifocal", "additional", "other", "too numerous to count", "some")
COUNT_RE = re.compile(
    r"\b(?:(" + _alt(VAGUE_COUNT_WORDS) + r")|(" + _alt(k for k in NUMBER_WORDS if k not in ("a", "an")) + r")|(\d{1,2}))\b",
    I,
)

# -------------------------------------------------------------------------------------- negation
#: NegEx pseudo-triggers: look like negation but are not (matched first and masked).
PSEUDO_NEGATION = [
    "no change", "no significant change", "no interval change", "no significant interval change", "no definite change",
    "no increase", "no significant increase", "no interval increase", "no growth", "no significant growth",
    "no interval growth", "no longer enlarging", "not only", "not significantly changed", "not changed",
    "not significantly", "not necessarily", "without change", "without significant change", "without interval change",
    "cannot exclude", "cannot be excluded", "can not be excluded", "can not exclude", "could not be excluded",
    "cannot rule out", "cannot be ruled out", "can not be ruled out", "not excluded", "not be excluded",
    "not ruled out", "not be ruled out", "not entirely excluded", "not well characterized", "not well characterised",
    "not characterized", "not characterised", "not fully characterized", "not fully characterised",
    "not seen on prior", "not seen on the prior", "not seen on previous", "not present on prior",
    "not present on the prior", "not visible on prior", "not identified on prior", "not seen previously",
    "not previously seen", "not previously identified", "not previously described", "previously not seen",
    "previously not identified", "previously not visualized", "not clearly",
    "not definitely", "no other change", "without interval growth", "gram negative",
]
#: Triggers that negate lesion nouns *after* them (window of PRE_WINDOW words).
PRE_NEGATION = [
    "no", "no evidence of", "no evidence for", "no sign of", "no signs of", "no suspicious", "no definite",
    "without", "without evidence of", "without any", "neither", "nor", "absence of", "absent", "negative for",
    "free of", "rather than", "not", "resolution of", "resolved", "no longer", "there is no", "there are no",
    "rules out", "ruled out",
]
#: Triggers that negate lesion nouns *before* them ("... is no longer seen").
POST_NEGATION = [
    "not seen", "not identified", "not visualized", "not visualised", "not demonstrated", "not appreciated",
    "not present", "not detected", "not evident", "not noted", "not visible", "not apparent", "no longer seen",
    "no longer visualized", "no longer visualised", "no longer identified", "no longer present", "no longer evident",
    "no longer demonstrated", "no longer visible", "no longer apparent", "has resolved", "have resolved",
    "is resolved", "are resolved", "is absent", "are absent", "was excluded", "is excluded", "are excluded",
    "has been excluded", "is ruled out", "has been ruled out", "are not seen", "are not identified",
    "is not seen", "is not identified", "was not seen", "were not seen", "not definitely seen",
]
#: Words that end a negation scope (NegEx termination terms).
NEGATION_TERMINATION = [
    "but", "however", "although", "though", "except", "apart from", "aside from", "other than", "which",
    "whereas", "while", "yet", "there is", "there are", "with the exception of", "except for", "besides",
    "nevertheless", "and a", "and an", "and one", "and two", "and multiple",
    "and several", "as well as a",
]
PRE_WINDOW = 7
POST_WINDOW = 8

PSEUDO_RE = re.compile(r"\b(?:" + _alt(PSEUDO_NEGATION) + r")\b", I)
PRE_NEG_RE = re.compile(r"\b(?:" + _alt(PRE_NEGATION) + r")\b", I)
POST_NEG_RE = re.compile(r"\b(?:" + _alt(POST_NEGATION) + r")\b", I)
TERMINATION_RE = re.compile(r"\b(?:" + _alt(NEGATION_TERMINATION) + r")\b|[;:]", I)

# ---------------------------------------------------------------------------------------- hedges
HEDGES = [
    "likely", "most likely", "probable", "probably", "possible", "possibly", "suspicious", "suspected",
    "suspect", "concerning", "worrisome", "suggestive", "suggesting", "may represent", "could represent",
    "might represent", "may be", "could be", "questionable", "indeterminate", "equivocal", "presumed",
    "presumably", "cannot exclude", "cannot be excluded", "can not be excluded", "not excluded", "cannot rule out",
    "cannot be ruled out", "not ruled out", "differential", "versus", "vs", "favor", "favored", "favour",
    "favoured", "thought to represent", "uncertain", "too small to characterize", "too small to characterise",
    "not well characterized", "not characterized", "may reflect", "could reflect", "apparent", "query",
    "rule out", "r/o", "?",
]
HEDGE_RE = re.compile(r"(?:\b(?:" + _alt(h for h in HEDGES if h != "?") + r")\b|\?)", I)

#: Phrases between two lesion nouns that make the second describe the *same* lesion
#: ("lesion, likely a cyst", "mass suspicious for RCC", "cyst or hemangioma").
INTERPRETIVE_RE = re.compile(
    r"\b(?:consistent with|compatible with|in keeping with|likely|most likely|probably|probable|possibly|possible|"
    r"suspicious for|suspicious of|suspicious|concerning for|worrisome for|suggestive of|suggesting|representing|"
    r"represents|may represent|could represent|might represent|may be|could be|may reflect|characteristic of|"
    r"typical of|reflecting|favou?r(?:ed|ing|s)?|presumably|presumed|thought to represent|versus|vs|or|such as|"
    r"which is|which are|which may be|which could be|which likely represents|which represents|diagnostic of|"
    r"corresponding to|either|with|containing|within|of|from|due to)\b",
    I,
)
#: Separators that start a new, independent lesion mention ("..., and a 9 mm cyst").
STRONG_SEPARATOR_RE = re.compile(
    r"\band\b|\bas well as\b|\balong with\b|\bplus\b|\bin addition\b|\badditionally\b|\balso\b|"
    r"\banother\b|\bincluding\b|[:;]",
    I,
)
#: Weaker separators: split only when nothing interpretive stands between two lesion nouns.
WEAK_SEPARATOR_RE = re.compile(r"[,(]")
#: Between a plural mention and what follows, these announce the individual lesions.
#: Recommendation / follow-up sentences: they mention lesions but describe none.
RECOMMENDATION_RE = re.compile(
    r"\b(?:recommend\w*|is suggested|are suggested|should be considered|advised|"
    r"(?:mri|ct|ultrasound|us|imaging|protocol)\s+(?:\w+\s+){0,3}(?:is|are)\s+(?:recommended|suggested|advised)|"
    r"for further (?:evaluation|characteri[sz]ation|assessment)|correlat(?:e|ion) (?:with|is)|"
    r"follow-?up (?:ct|mri|imaging|ultrasound|in \d+)|consider (?:mri|ct|biopsy|follow))\b",
    I,
)
ENUMERATION_RE = re.compile(r":|\bincluding\b|\bas follows\b|\bnamely\b", I)

# ------------------------------------------------------------------------------------ normal / other
NORMAL_RE = re.compile(
    r"\b(?:unremarkable|normal|normally|within normal limits|wnl|grossly normal|normal in (?:size|appearance|contour|"
    r"caliber|morphology|attenuation|enhancement)|intact|negative|clear|patent|preserved|no significant abnormality|"
    r"not (?:enlarged|dilated|distended|thickened)|homogeneous(?:ly)?|symmetric(?:al)?(?:ly)?)\b",
    I,
)
#: A sentence that only reports how the study was done, the history or a comparison.
NON_DIAGNOSTIC_RE = re.compile(
    r"\b(?:technique|protocol|were (?:obtained|acquired|performed)|was (?:obtained|acquired|performed)|"
    r"contrast (?:was|were) (?:given|administered)|intravenous contrast|iv contrast|oral contrast|"
    r"axial images|multiplanar|reformat\w*|comparison|compared (?:with|to) (?:the )?(?:prior|previous)|"
    r"clinical (?:history|information|indication)|indication|history of|known history|follow-?up of|"
    r"dictated|electronically signed|signed by|reviewed by|recommend\w*|correlation|dose|dlp|ctdi|"
    r"no prior|none available|portal venous phase|arterial phase|noncontrast|non-contrast)\b",
    I,
)
