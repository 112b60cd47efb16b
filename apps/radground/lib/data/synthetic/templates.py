"""Lesion sentence templates: 34 single-lesion, 5 two-lesion and 3 bilateral-kidney forms.

Every template names the organ (and a kidney's side) inside the sentence itself, so a sentence
can be grounded without its section label. Templates differ in word order (size before or
after the organ, telegraphic or full sentences, colon labels, trailing "respectively" lists).
A template returns the sentence text and leaves what it stated in the ``LesionPhrases`` records.
"""
from __future__ import annotations

from .phrases import PLURAL, LesionPhrases, a, cap, make_size

SINGLE: dict[str, callable] = {}


def single(tid):
    def deco(fn):
        SINGLE[tid] = fn
        return fn

    return deco


@single("L01")
def _l01(p: LesionPhrases, ctx):
    return f"{cap(a(p.np(size=True, enh=True)))} {p.loc_in()}{p.hu('paren')}."


@single("L02")
def _l02(p, ctx):
    return f"There is {a(p.np())} {p.loc_in()} measuring {p.size()}{p.hu('paren')}."


@single("L03")
def _l03(p, ctx):
    return f"There is {a(p.np(size=True))} {p.loc_in()}{p.enh_post()}."


@single("L04")
def _l04(p, ctx):
    return f"{cap(p.np())} {p.loc_in()}, measuring {p.size()}{p.hu('paren')}."


@single("L05")
def _l05(p, ctx):
    return f"In {p.loc_np()}, there is {a(p.np(size=True))}{p.enh_post()}."


@single("L06")
def _l06(p, ctx):
    return f"{p.size_bare()} {p.np()} {p.loc_in()}{p.hu('paren')}."


@single("L07")
def _l07(p, ctx):
    return f"{cap(a(p.np()))} is present {p.loc_in()}, measuring {p.size()}."


@single("L08")
def _l08(p, ctx):
    return f"{cap(p.loc_np())} contains {a(p.np())} measuring {p.size()}{p.hu('paren')}."


@single("L09")
def _l09(p, ctx):
    return f"Note is made of {a(p.np(size=True))} {p.loc_in()}."


@single("L10")
def _l10(p, ctx):
    return f"{cap(p.np())} within {p.loc_np()}, measuring {p.size_bare()}{p.enh_post()}."


@single("L11")
def _l11(p, ctx):
    if p.plan_hu is not None:
        return f"There is {a(p.noun_only())} measuring {p.size()} {p.loc_in()} with an attenuation of {p.hu('value')} Hounsfield units."
    return f"There is {a(p.np())} measuring {p.size()} {p.loc_in()}."


@single("L12")
def _l12(p, ctx):
    return f"{p.loc_label()}: {p.size_bare()} {p.np()}."


@single("L13")
def _l13(p, ctx):
    return f"Within {p.loc_np()} is {a(p.np())}, {p.size_bare()}{p.hu('paren')}."


@single("L14")
def _l14(p, ctx):
    return f"{cap(a(p.np()))} measuring {p.size()} is seen {p.loc_in()}."


@single("L15")
def _l15(p, ctx):
    return f"{cap(a(p.np()))} measuring {p.size()} is identified {p.loc_in()}{p.hu('with')}."


@single("L16")
def _l16(p, ctx):
    if p.plan_enh is not None:
        return f"{cap(a(p.size_pre() + ' ' + p.noun_only()))} {p.loc_in()} demonstrates {p.enh_np()}{p.hu('paren')}."
    return f"{cap(a(p.np(size=True)))} {p.loc_in()} is noted{p.hu('paren')}."


@single("L17")
def _l17(p, ctx):
    return f"Measuring {p.size()}, {a(p.np())} is noted {p.loc_in()}."


@single("L18")
def _l18(p, ctx):
    if p.les.size_mm[0] < 12 and p.les.density == "hypodense":
        p.rep_hedge = "too small to characterize"
        return f"Small {p.np()} {p.loc_in()} ({p.size_bare()}), too small to characterize."
    return f"{cap(p.np())} {p.loc_in()} ({p.size_bare()}){p.hedge()}."


@single("L19")
def _l19(p, ctx):
    return f"{cap(p.np(enh=True))} ({p.size_bare()}) {p.loc_in()}."


@single("L20")
def _l20(p, ctx):
    return f"{cap(p.loc_mod())} {p.np()}, {p.size_bare()}{p.hu('short')}."


@single("L21")
def _l21(p, ctx):
    return f"The {p.organ_np()} demonstrates {a(p.np())} {p.sub_in()} measuring {p.size()}."


@single("L22")
def _l22(p, ctx):
    return f"The {p.organ_np()} is notable for {a(p.np(size=True))} {p.sub_in()}{p.enh_post()}."


@single("L23")
def _l23(p, ctx):
    verb = "is centered in" if p.organ == "liver" else "arises from"
    return f"{cap(a(p.np()))} {verb} {p.loc_np()}, measuring {p.size()}."


@single("L24")
def _l24(p, ctx):
    if p.plan_hu is not None:
        return f"There is {a(p.np())} {p.loc_in()} which measures {p.size()} and has an attenuation of {p.hu('value')} Hounsfield units."
    return f"There is {a(p.np())} {p.loc_in()} which measures {p.size()}."


@single("L25")
def _l25(p, ctx):
    if ctx.get("first_in_organ", True):
        return f"{cap(a(p.np()))} is noted {p.loc_in()}, measuring {p.size()}."
    return f"Also noted is {a(p.np())} {p.loc_in()} measuring {p.size()}."


@single("L26")
def _l26(p, ctx):
    return f"{cap(p.loc_np())} demonstrates {a(p.np(size=True))}{p.enh_post()}."


@single("L27")
def _l27(p, ctx):
    return f"{cap(p.np())} {p.loc_in()} measuring {p.size()}{p.hedge()}."


@single("L28")
def _l28(p, ctx):
    p.noun = "lesion"  # "a 1.2 cm cyst ... is cystic" would be redundant
    return f"{cap(a(p.size_pre()))} {p.noun_only()} {p.loc_in()} is {p.pred()}{p.hu('paren')}{p.enh_post()}."


@single("L29")
def _l29(p, ctx):
    if not ctx.get("first_in_organ", True):
        return f"An additional {p.np(size=True)} is present {p.loc_in()}."
    return f"{cap(a(p.np(size=True)))} is present {p.loc_in()}."


@single("L30")
def _l30(p, ctx):
    return f"In {p.loc_np()} is {a(p.np())} measuring {p.size()}."


@single("L31")
def _l31(p, ctx):
    return f"{cap(p.np())} {p.loc_in()} measures {p.size()}{p.enh_pred()}."


@single("L32")
def _l32(p, ctx):
    lead = "an ill-defined" if p.les.density == "hypodense" else "a well-circumscribed"
    return f"There is {lead} {p.np()} {p.loc_in()}, approximately {p.size_bare()} in size."


@single("L33")
def _l33(p, ctx):
    prep = "within" if p.organ == "pancreas" else "in"
    return f"{cap(a(p.np(size=True)))} is present in the {p.organ_np()}, {prep} {p.sub_np()}."


@single("L34")
def _l34(p, ctx):
    hu = p.hu("value")
    inner = f"{p.size_bare()}; {hu} HU" if hu else p.size_bare()
    return f"{cap(p.np())} {p.loc_in()} ({inner})."


# ------------------------------------------------------------------------------------ pairs
def _pair_sizes(r, pa: LesionPhrases, pb: LesionPhrases, shared_unit: bool = True) -> str:
    """'12 and 18 mm' (one unit for both, only when the sizes stand side by side) or '12 mm and 18 mm'."""
    unit = "cm" if max(pa.les.size_mm[0], pb.les.size_mm[0]) >= 10 and r.random() < 0.55 else "mm"
    pa.rep_size = make_size(r, pa.les.size_mm, n=1, unit=unit)
    pb.rep_size = make_size(r, pb.les.size_mm, n=1, unit=unit)
    ta, tb = pa.rep_size.text, pb.rep_size.text
    if shared_unit and r.random() < 0.6 and " x " not in ta:  # shared unit: "12 and 18 mm"
        pa.rep_size.text = ta.rsplit(" ", 1)[0]  # the first size is stated without its unit
        return f"{pa.rep_size.text} and {tb}"
    return f"{ta} and {tb}"


def _pair_loc(r, pa: LesionPhrases, pb: LesionPhrases) -> str:
    """'in hepatic segments VI and VII' / 'in the upper and lower poles of the right kidney'."""
    if pa.organ == "liver":
        sa, sb = pa._segname(), pb._segname()
        return str(r.choice([f"in hepatic segments {sa} and {sb}", f"in segments {sa} and {sb} of the liver", f"in liver segments {sa} and {sb}"]))
    if pa.group == "kidney":
        x, y = pa.sub, pb.sub
        if x.endswith("pole") and y.endswith("pole"):
            parts = f"{x.split()[0]} and {y.split()[0]} poles"
        else:
            parts = f"{x} and {y}"
        return str(r.choice([f"in the {parts} of the {pa.side} kidney", f"in the {pa.side} renal {parts}"]))
    return str(r.choice([f"in the pancreatic {pa.sub} and {pb.sub}", f"in the {pa.sub} and {pb.sub} of the pancreas"]))


def pair_sentence(r, pa: LesionPhrases, pb: LesionPhrases) -> tuple[str, str]:
    """One sentence describing two lesions of one organ at different sub-locations."""
    same = pa.adj == pb.adj and pa.noun == pb.noun
    choices = ["P1", "P2", "P3", "P4", "P5"] if same else ["P4", "P5"]
    tid = str(r.choice(choices))
    if tid in ("P1", "P2", "P3"):
        adj = pa.adjective()
        pb.adjective()
        noun = PLURAL[pa.noun_only()]
        pb.noun_only()
        head = f"{adj} {noun}" if adj else noun
        if tid == "P1":
            return tid, f"Two {head} {_pair_loc(r, pa, pb)} measuring {_pair_sizes(r, pa, pb)}, respectively."
        if tid == "P2":
            return tid, f"{cap(head)} {_pair_loc(r, pa, pb)} measure {_pair_sizes(r, pa, pb)}, respectively."
        pa.rep_size = make_size(r, pa.les.size_mm, n=1)
        pb.rep_size = make_size(r, pb.les.size_mm, n=1)
        return tid, f"There are two {head} in the {pa.organ_np()}: {pa.rep_size.text} in {pa.sub_np()} and {pb.rep_size.text} in {pb.sub_np()}."
    if tid == "P4":
        word = "lesions" if pa.noun != pb.noun else PLURAL[pa.noun]
        return tid, f"Two {word} are seen in the {pa.organ_np()}: {a(pa.np())} {pa.sub_in()} measuring {pa.size()}; and {a(pb.np())} {pb.sub_in()} measuring {pb.size()}."
    return tid, f"{cap(pa.organ_adj())} lesions include {a(pa.np(size=True))} {pa.sub_in()} and {a(pb.np(size=True))} {pb.sub_in()}."


def bilateral_sentence(r, pr: LesionPhrases, pl: LesionPhrases) -> tuple[str, str]:
    """One sentence for a right and a left kidney lesion."""
    both_cyst = pr.les.density == "cystic" and pl.les.density == "cystic"
    tid = str(r.choice(["B1", "B2", "B3"] if both_cyst else ["B2", "B3"]))
    _pair_sizes(r, pr, pl, shared_unit=False)  # sets reported sizes; they stand apart, so each keeps its unit
    sr, sl = pr.rep_size.text, pl.rep_size.text
    if tid == "B1":
        pr.rep_density = pl.rep_density = "cystic"
        return tid, f"Bilateral renal cysts are present, measuring {sr} in the right {pr.sub} and {sl} in the left {pl.sub}."
    adj = pr.adjective() if pr.adj == pl.adj else ""
    if adj:
        pl.adjective()
    if tid == "B2":
        lead = f"bilateral {adj} renal lesions" if adj else "bilateral renal lesions"
        return tid, f"There are {lead}: {sr} in the {pr.sub} of the right kidney and {sl} in the {pl.sub} of the left kidney."
    lead = f"{cap(adj)} lesions" if adj else "Lesions"
    return tid, f"{lead} are seen in both kidneys, {sr} in the right {pr.sub} and {sl} in the left {pl.sub}."
