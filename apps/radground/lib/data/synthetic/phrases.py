"""Surface wording of one lesion: location, size, density, HU and enhancement phrases.

A ``LesionPhrases`` is made once per lesion and per report; templates call its methods and it
records what a sentence actually stated (reported sizes in mm, HU, enhancement, density word),
which becomes the lesion's truth. Size and HU values are what a radiologist writes: rounded to
the mm or to 0.1 cm, long axis first, sometimes off by about a millimetre.
"""
from __future__ import annotations

import re
from typing import Optional

import numpy as np

ARABIC = {"I": "1", "II": "2", "III": "3", "IV": "4", "V": "5", "VI": "6", "VII": "7", "VIII": "8"}
LOBE_DESC = {
    "VII": "posterior right hepatic lobe",
    "VI": "posterior inferior right hepatic lobe",
    "VIII": "superior right hepatic lobe",
    "V": "anterior inferior right hepatic lobe",
    "IV": "medial left hepatic lobe",
    "II": "lateral left hepatic lobe",
    "III": "lateral left hepatic lobe",
}
PLURAL = {"lesion": "lesions", "cyst": "cysts", "mass": "masses", "nodule": "nodules", "focus": "foci"}

DENSITY_ADJ = {
    "hypodense": ["hypodense", "hypoattenuating", "low-attenuation", "low-density"],
    "hyperdense": ["hyperdense", "hyperattenuating", "high-attenuation"],
    "cystic": ["cystic", "fluid-attenuation", "fluid-density", "water-attenuation"],
}
DENSITY_PRED = {
    "hypodense": ["hypoattenuating", "hypodense", "low in attenuation"],
    "hyperdense": ["hyperattenuating", "hyperdense"],
    "cystic": ["fluid attenuation", "cystic", "of fluid attenuation"],
}
ENH = {
    # canonical: (prenominal, postmodifier after a comma, noun phrase, predicate after "and")
    "non-enhancing": (["non-enhancing", "nonenhancing"], ["without enhancement", "without internal enhancement", "with no internal enhancement"], ["no internal enhancement", "no enhancement"], ["does not enhance", "is non-enhancing"]),
    "rim-enhancing": (["rim-enhancing", "peripherally enhancing"], ["with rim enhancement", "with peripheral rim enhancement"], ["rim enhancement", "peripheral rim enhancement"], ["is rim-enhancing", "shows rim enhancement"]),
    "hypoenhancing": (["hypoenhancing"], ["with hypoenhancement relative to the adjacent parenchyma", "which is hypoenhancing"], ["hypoenhancement relative to the adjacent parenchyma"], ["is hypoenhancing"]),
    "arterially enhancing": (["arterially enhancing", "arterially hyperenhancing"], ["with arterial phase hyperenhancement", "with arterial enhancement"], ["arterial phase hyperenhancement", "arterial enhancement"], ["demonstrates arterial enhancement", "is arterially enhancing"]),
    "enhancing": (["enhancing", "avidly enhancing"], ["with avid enhancement", "with internal enhancement"], ["avid enhancement", "internal enhancement"], ["enhances avidly", "is enhancing"]),
}
HEDGES = {
    ("liver", "cystic"): ["likely a cyst", "compatible with a simple cyst", "consistent with a cyst", "likely representing a cyst"],
    ("liver", "hypodense"): ["indeterminate", "suspicious for metastasis", "nonspecific"],
    ("liver", "hyperdense"): ["possibly a hemangioma", "indeterminate", "likely a flash-filling hemangioma"],
    ("kidney", "cystic"): ["likely a simple cyst", "consistent with a simple cyst", "likely benign"],
    ("kidney", "hypodense"): ["indeterminate", "concerning for a solid renal neoplasm"],
    ("kidney", "hyperdense"): ["concerning for renal cell carcinoma", "indeterminate"],
    ("pancreas", "cystic"): ["possibly a side-branch IPMN", "likely a pseudocyst or cystic neoplasm", "indeterminate"],
    ("pancreas", "hypodense"): ["concerning for neoplasm", "suspicious for adenocarcinoma", "indeterminate"],
    ("pancreas", "hyperdense"): ["possibly a neuroendocrine tumor", "indeterminate"],
}


def article(phrase: str) -> str:
    """'a' or 'an' for the phrase (numbers are read aloud: an 8 mm, an 11 mm, an 18 mm, a 1.8 cm)."""
    w = phrase.split()[0].lower() if phrase.split() else ""
    if w[:1].isdigit():
        num = re.match(r"[\d.]+", w).group(0)
        an = num.startswith("8") or re.match(r"^(11|18)(\.|$)", num) is not None
        return "an" if an else "a"
    if w.startswith(("uni", "use", "eu")):
        return "a"
    return "an" if w[:1] in "aeio" or w.startswith(("ill", "und", "unc", "une")) else "a"


def a(phrase: str) -> str:
    return f"{article(phrase)} {phrase}"


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def fmt_num_cm(v_mm: float) -> str:
    return f"{round(v_mm / 10.0, 1):.1f}"


class SizeText:
    """A size as written: text plus the millimetre values it states."""

    def __init__(self, text: str, mm: list[float]):
        self.text, self.mm = text, mm


def make_size(r: np.random.Generator, dims: list[float], n: Optional[int] = None, unit: Optional[str] = None, hyphen_ok=False, prefix_ok=False) -> SizeText:
    if n is None:
        n = int(r.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    n = min(n, len(dims))
    vals = [float(v) for v in dims[:n]]
    if r.random() < 0.3:  # measurement variability of about a millimetre
        vals = [max(v + r.normal(0, 0.6), 1.0) for v in vals]
    if unit is None:
        unit = ("mm" if r.random() < 0.85 else "cm") if vals[0] < 10 else ("cm" if r.random() < 0.55 else "mm")
    if unit == "mm":
        nums = [max(int(round(v)), 1) for v in vals]
        nums = sorted(nums, reverse=True)
        mm = [float(x) for x in nums]
        strs = [str(x) for x in nums]
    else:
        nums = sorted([max(round(v / 10.0, 1), 0.1) for v in vals], reverse=True)
        mm = [round(x * 10.0, 1) for x in nums]
        strs = [f"{x:.1f}" for x in nums]
    sep = " \u00d7 " if r.random() < 0.04 else " x "
    if n > 1 and r.random() < 0.12:
        text = sep.join(f"{s} {unit}" for s in strs)
    else:
        text = sep.join(strs) + f" {unit}"
    if n == 1 and hyphen_ok and r.random() < 0.15:
        text = f"{strs[0]}-{unit}"
    elif prefix_ok:
        u = r.random()
        if u < 0.12:
            text = "approximately " + text
        elif u < 0.2 and n == 1:
            text = "up to " + text
    return SizeText(text, mm)


class LesionPhrases:
    """Wording choices for one lesion and a record of what its sentence stated."""

    def __init__(self, lesion, r: np.random.Generator, hu_p: float = 0.3):
        self.les, self.r = lesion, r
        self.organ = lesion.organ
        self.group = "kidney" if lesion.organ.startswith("kidney") else lesion.organ
        self.side = {"kidney_right": "right", "kidney_left": "left"}.get(lesion.organ, "")
        self.sub = lesion.sub_location
        self.seg = self.sub.replace("segment ", "") if self.organ == "liver" else ""
        self.arabic = r.random() < 0.12 and self.seg != "I"
        d1 = lesion.size_mm[0]
        # density wording: adjective, noun, the density it states, lesion type
        dens = lesion.density
        if dens == "cystic":
            u = r.random()
            if u < 0.3:
                self.adj, self.noun = "", "cyst"
            elif u < 0.45:
                self.adj, self.noun = "simple", "cyst"
            elif u < 0.75:
                self.adj, self.noun = str(r.choice(DENSITY_ADJ["cystic"])), "lesion"
            else:
                self.adj, self.noun = str(r.choice(["hypodense", "low-attenuation", "hypoattenuating"])), "lesion"
            self.stated_density = "hypodense" if self.adj in DENSITY_ADJ["hypodense"] else "cystic"
        else:
            self.adj = str(r.choice(DENSITY_ADJ[dens]))
            u = r.random()
            if d1 >= 25 and u < 0.5:
                self.noun = "mass"
            elif d1 < 10 and u < 0.3:
                self.noun = "focus"
            elif d1 < 20 and u < 0.45 and self.organ == "liver":
                self.noun = "nodule"
            else:
                self.noun = "lesion"
            self.stated_density = dens
        hedges = HEDGES.get((self.group, dens), [])
        if dens == "cystic" and self.stated_density == "hypodense":
            self.hedge_text = str(r.choice(HEDGES[(self.group, "cystic")]))
        elif d1 < 10 and dens == "hypodense" and r.random() < 0.5:
            self.hedge_text = "too small to characterize"
        else:
            self.hedge_text = str(r.choice(hedges)) if hedges and r.random() < 0.6 else ""
        self.plan_hu = int(round(max(lesion.hu_design + r.normal(0, 2), 0))) if r.random() < (0.45 if dens == "cystic" else hu_p) else None
        self.plan_enh = lesion.enhancement if (lesion.enhancement and r.random() < 0.8) else None
        # records of what was stated
        self.rep_size: Optional[SizeText] = None
        self.rep_hu: Optional[int] = None
        self.rep_enh: Optional[str] = None
        self.rep_density: Optional[str] = None
        self.rep_hedge: Optional[str] = None

    # ---------------------------------------------------------------- sizes
    def _size(self, **kw) -> str:
        assert self.rep_size is None, "a lesion's size is stated once per sentence"
        self.rep_size = make_size(self.r, self.les.size_mm, **kw)
        return self.rep_size.text

    def size(self) -> str:
        """Size after 'measuring' / 'measures' (may read 'approximately ...' or 'up to ...')."""
        return self._size(prefix_ok=True)

    def size_bare(self) -> str:
        return self._size()

    def size_pre(self) -> str:
        """Prenominal size: '1.8 cm', '18-mm', '3.2 x 2.1 cm'."""
        return self._size(hyphen_ok=True)

    def size_1d(self, unit=None) -> str:
        return self._size(n=1, unit=unit)

    # ---------------------------------------------------------------- density / noun
    def adjective(self) -> str:
        if self.adj:
            self.rep_density = self.stated_density
        elif self.noun == "cyst":
            self.rep_density = "cystic"
        return self.adj

    def noun_only(self) -> str:
        if self.noun == "cyst":
            self.rep_density = self.rep_density or "cystic"
        return self.noun

    def np(self, size: bool = False, enh: bool = False, adj: bool = True) -> str:
        """Noun phrase without article: [size] [enhancement] [density] noun."""
        parts = []
        if size:
            parts.append(self.size_pre())
        if enh:
            e = self.enh_pre()
            if e:
                parts.append(e)
        if adj:
            w = self.adjective()
            if w:
                parts.append(w)
        parts.append(self.noun_only())
        return " ".join(parts)

    def pred(self) -> str:
        self.rep_density = self.les.density if self.les.density != "cystic" else "cystic"
        return str(self.r.choice(DENSITY_PRED[self.les.density]))

    def hedge(self, sep: str = ", ") -> str:
        if not self.hedge_text:
            return ""
        self.rep_hedge = self.hedge_text
        return sep + self.hedge_text

    # ---------------------------------------------------------------- HU / enhancement
    def hu(self, style: str = "paren") -> str:
        if self.plan_hu is None:
            return ""
        v = self.plan_hu
        self.rep_hu = v
        r = self.r
        if style == "paren":
            return " " + str(r.choice([f"({v} HU)", f"(HU {v})", f"(mean attenuation {v} HU)", f"({v} Hounsfield units)"]))
        if style == "with":
            return ", " + str(r.choice([f"with an attenuation of {v} HU", f"with an attenuation of {v} Hounsfield units", f"with a density of {v} HU", f"attenuation {v} HU"]))
        if style == "short":
            return ", " + str(r.choice([f"HU {v}", f"{v} HU", f"attenuation {v} HU"]))
        if style == "value":
            return str(v)
        raise ValueError(style)

    def _enh(self, k: int) -> str:
        if self.plan_enh is None:
            return ""
        self.rep_enh = self.plan_enh
        return str(self.r.choice(ENH[self.plan_enh][k]))

    def enh_pre(self) -> str:
        return self._enh(0)

    def enh_post(self) -> str:
        e = self._enh(1)
        return ", " + e if e else ""

    def enh_np(self) -> str:
        return self._enh(2)

    def enh_pred(self) -> str:
        e = self._enh(3)
        return " and " + e if e else ""

    # ---------------------------------------------------------------- location
    def _segname(self) -> str:
        return ARABIC[self.seg] if self.arabic else self.seg

    def _kpart(self) -> str:
        p = self.sub
        u = self.r.random()
        if p == "upper pole" and u < 0.1:
            return "superior pole"
        if p == "lower pole" and u < 0.1:
            return "inferior pole"
        return p

    def loc_np(self) -> str:
        """Definite location noun phrase that names the organ (and the side for a kidney)."""
        r = self.r
        if self.organ == "liver":
            s = self._segname()
            if self.seg == "I":
                return str(r.choice(["the caudate lobe of the liver", "the hepatic caudate lobe (segment I)", "segment I of the liver", "hepatic segment I"]))
            u = r.random()
            if u < 0.18:
                return f"the {LOBE_DESC[self.seg]} (segment {s})"
            return str(r.choice([f"hepatic segment {s}", f"segment {s} of the liver", f"liver segment {s}"]))
        if self.group == "kidney":
            p, side = self._kpart(), self.side
            if p == "interpolar region":
                return str(r.choice([f"the interpolar region of the {side} kidney", f"the {side} renal interpolar region", f"the interpolar {side} kidney", f"the midpole of the {side} kidney"]))
            return str(r.choice([f"the {p} of the {side} kidney", f"the {side} renal {p}", f"the {side} kidney {p}"]))
        p = self.sub
        return str(r.choice([f"the pancreatic {p}", f"the {p} of the pancreas"]))

    def loc_in(self) -> str:
        return ("within " if self.r.random() < 0.12 else "in ") + self.loc_np()

    def loc_label(self) -> str:
        """Short location label that starts a telegraphic sentence ('Hepatic segment VII')."""
        if self.organ == "liver":
            return "Caudate lobe of the liver" if self.seg == "I" else f"Hepatic segment {self._segname()}"
        if self.group == "kidney":
            return cap(f"{self.side} renal {self._kpart()}") if self.r.random() < 0.5 else cap(f"{self.side} kidney, {self._kpart()}")
        return f"Pancreatic {self.sub}"

    def loc_mod(self) -> str:
        """Location used as a modifier before the noun ('left lower pole renal', 'pancreatic tail')."""
        if self.organ == "liver":
            return "hepatic caudate lobe" if self.seg == "I" else f"hepatic segment {self._segname()}"
        if self.group == "kidney":
            p = self._kpart()
            p = "interpolar" if p == "interpolar region" else p
            return f"{self.side} {p} renal" if self.r.random() < 0.5 else f"{self.side} renal {p}"
        return f"pancreatic {self.sub}"

    def organ_np(self) -> str:
        return {"liver": "liver", "pancreas": "pancreas"}.get(self.organ, f"{self.side} kidney")

    def organ_adj(self) -> str:
        return {"liver": "hepatic", "pancreas": "pancreatic"}.get(self.organ, f"{self.side} renal")

    def sub_np(self) -> str:
        """Organ-free sub-location ('segment VII', 'the upper pole', 'the tail'): only after the organ is named."""
        if self.organ == "liver":
            return "the caudate lobe" if self.seg == "I" else f"segment {self._segname()}"
        if self.group == "kidney":
            return f"the {self._kpart()}"
        return f"the {self.sub}"

    def sub_in(self) -> str:
        return "in " + self.sub_np()

    def record(self) -> dict:
        """What the describing sentence stated, for the truth JSON."""
        return {
            "reported_size_mm": list(self.rep_size.mm) if self.rep_size else [],
            "reported_size_text": self.rep_size.text if self.rep_size else None,
            "reported_hu": self.rep_hu,
            "reported_density": self.rep_density,
            "enhancement": self.rep_enh,
            "lesion_type": self.noun,
            "hedge": self.rep_hedge,
        }
