"""Hand-written report sentences (no template produced them) with the lesion units they must give.

Each case lists the expected *positive* units (organ, sub-location, size, HU, count) and whether
negated units / which sentence kind are expected. Fields not given in an expectation are not
checked, so a case states only what a radiologist would insist on.
"""
from __future__ import annotations

import pytest

from lib.reports import SentenceKind, parse_report

F, NEG, NORM, ND = SentenceKind.FINDING, SentenceKind.NEGATIVE, SentenceKind.NORMAL, SentenceKind.NON_DIAGNOSTIC

# (text, expected positive units, expected negated organs, expected kind of the first sentence)
CASES: list[tuple[str, list[dict], list[str], SentenceKind]] = [
    (
        "Segment 7 hepatic hypodensity measuring 1.4 x 1.1 cm, too small to characterize.",
        [dict(organ="liver", sub_location=["segment VII"], size_mm=[14, 11], density="hypodense", hedged=True)],
        [], F,
    ),
    (
        "Exophytic 2.3 cm enhancing lesion arising from the lower pole of the left kidney, suspicious for RCC.",
        [dict(organ="kidney_left", sub_location=["lower pole"], size_mm=[23], enhancement="enhancing",
              lesion_type="renal cell carcinoma", hedged=True)],
        [], F,
    ),
    ("No pancreatic mass.", [], ["pancreas"], NEG),
    ("Unremarkable pancreas.", [], [], NORM),
    (
        "Likely cyst in the pancreatic tail, 9 mm (HU 12).",
        [dict(organ="pancreas", sub_location=["tail"], size_mm=[9], hu=12, lesion_type="cyst", hedged=True)],
        [], F,
    ),
    (
        "Two hypodense lesions in segments VI and VII measuring 12 and 18 mm.",
        [dict(organ="liver", sub_location=["segment VI"], size_mm=[12], count=1),
         dict(organ="liver", sub_location=["segment VII"], size_mm=[18], count=1)],
        [], F,
    ),
    ("No focal hepatic lesion.", [], ["liver"], NEG),
    ("No pancreatic mass or ductal dilatation.", [], ["pancreas"], NEG),
    ("The spleen is normal in size.", [], [], NORM),
    (
        "Liver: 1.2 cm lesion in segment II; 8 mm cyst in segment V.",
        [dict(organ="liver", sub_location=["segment II"], size_mm=[12]),
         dict(organ="liver", sub_location=["segment V"], size_mm=[8], lesion_type="cyst")],
        [], F,
    ),
    (
        "Multiple small hepatic cysts, measuring up to 1.5 cm.",
        [dict(organ="liver", size_mm=[15], count=2, count_is_lower_bound=True, lesion_type="cyst")],
        [], F,
    ),
    (
        "Innumerable tiny hypodensities throughout the liver, too small to characterize.",
        [dict(organ="liver", size_mm=[], count=2, count_is_lower_bound=True)],
        [], F,
    ),
    (
        "Several subcentimeter renal cysts bilaterally.",
        [dict(organ="kidney_left", size_mm=[], count_is_lower_bound=True),
         dict(organ="kidney_right", size_mm=[], count_is_lower_bound=True)],
        [], F,
    ),
    (
        "Simple cyst in the upper pole of the right kidney measuring 3.2 x 2.1 cm, attenuation of 8 Hounsfield units.",
        [dict(organ="kidney_right", sub_location=["upper pole"], size_mm=[32, 21], hu=8, lesion_type="cyst")],
        [], F,
    ),
    (
        "A 12 x 9 x 8 mm hyperdense lesion in hepatic segment IVa, likely a flash-filling hemangioma.",
        [dict(organ="liver", sub_location=["segment IV"], size_mm=[12, 9, 8], density="hyperdense",
              lesion_type="hemangioma")],
        [], F,
    ),
    (
        "Hypoattenuating lesions in segment III and segment VIII measuring 1.1 cm and 2.3 cm, respectively.",
        [dict(organ="liver", sub_location=["segment III"], size_mm=[11]),
         dict(organ="liver", sub_location=["segment VIII"], size_mm=[23])],
        [], F,
    ),
    (
        "Fat-containing lesion of the left kidney interpolar region, 14 mm, with HU -45, compatible with angiomyolipoma.",
        [dict(organ="kidney_left", sub_location=["interpolar region"], size_mm=[14], hu=-45,
              lesion_type="angiomyolipoma")],
        [], F,
    ),
    (
        "There is a 2.8 x 2.2 cm hypoenhancing mass in the pancreatic head with upstream ductal dilatation.",
        [dict(organ="pancreas", sub_location=["head"], size_mm=[28, 22], enhancement="hypoenhancing",
              lesion_type="mass")],
        [], F,
    ),
    (
        "Cystic lesion within the uncinate process measuring approx. 11 mm, possibly a side-branch IPMN.",
        [dict(organ="pancreas", sub_location=["uncinate process"], size_mm=[11], lesion_type="IPMN", hedged=True)],
        [], F,
    ),
    (
        "Right renal inferior pole cyst, 1.8 cm, without enhancement.",
        [dict(organ="kidney_right", sub_location=["lower pole"], size_mm=[18], enhancement="non-enhancing")],
        [], F,
    ),
    (
        "No evidence of hepatic metastases.",
        [], ["liver"], NEG,
    ),
    (
        "The previously described lesion in segment 6 is no longer visualized.",
        [], ["liver"], NEG,
    ),
    (
        "A small hepatic lesion cannot be excluded in segment VIII.",
        [dict(organ="liver", sub_location=["segment VIII"], hedged=True)],
        [], F,
    ),
    (
        "The kidneys enhance symmetrically without hydronephrosis.",
        [], [], NORM,
    ),
    (
        "The liver, spleen, pancreas and adrenal glands are unremarkable.",
        [], [], NORM,
    ),
    (
        "CT of the abdomen and pelvis was performed with intravenous contrast in the portal venous phase.",
        [], [], ND,
    ),
    (
        "Probable hemangioma in the right hepatic lobe, 2.4 cm, stable.",
        [dict(organ="liver", sub_location=["right lobe"], size_mm=[24], lesion_type="hemangioma", hedged=True)],
        [], F,
    ),
    (
        "Left kidney: 9 mm hypodense lesion in the superior pole (15 HU), likely a cyst.",
        [dict(organ="kidney_left", sub_location=["upper pole"], size_mm=[9], hu=15, lesion_type="cyst")],
        [], F,
    ),
    (
        "Mass in the body/tail junction of the pancreas measuring up to 2.4 cm, concerning for adenocarcinoma.",
        [dict(organ="pancreas", sub_location=["body", "tail"], size_mm=[24], lesion_type="carcinoma", hedged=True)],
        [], F,
    ),
    (
        "A 2.1 cm mass in the pancreatic neck and a 9 mm cyst in the pancreatic tail.",
        [dict(organ="pancreas", sub_location=["neck"], size_mm=[21]),
         dict(organ="pancreas", sub_location=["tail"], size_mm=[9])],
        [], F,
    ),
    (
        "Heterogeneously enhancing 5.6 cm mass replacing the mid left kidney.",
        [dict(organ="kidney_left", sub_location=["interpolar region"], size_mm=[56],
              enhancement="heterogeneously enhancing")],
        [], F,
    ),
    (
        "New 7 mm arterially enhancing nodule in segment 8 (not seen on prior), LI-RADS 4.",
        [dict(organ="liver", sub_location=["segment VIII"], size_mm=[7], enhancement="hyperenhancing")],
        [], F,
    ),
    (
        "Interval increase in size of the segment V lesion, now measuring 3.1 cm (previously 2.2 cm).",
        [dict(organ="liver", sub_location=["segment V"], size_mm=[31])],
        [], F,
    ),
    (
        "Three hypodense lesions in the liver, the largest in segment II measuring 1.9 cm.",
        [dict(organ="liver", sub_location=["segment II"], size_mm=[19], count=3, count_is_lower_bound=False)],
        [], F,
    ),
    (
        "Hepatic cysts in segments 2 and 4, measuring 5 mm and 7 mm.",
        [dict(organ="liver", sub_location=["segment II"], size_mm=[5]),
         dict(organ="liver", sub_location=["segment IV"], size_mm=[7])],
        [], F,
    ),
    (
        "No suspicious renal or hepatic lesions.",
        [], ["kidney_left", "kidney_right", "liver"], NEG,  # "renal" without a side: neither kidney
    ),
    (
        "Small nonenhancing cyst in the lower pole of the left kidney, no hydronephrosis.",
        [dict(organ="kidney_left", sub_location=["lower pole"], enhancement="non-enhancing", size_mm=[])],
        [], F,
    ),
    (
        "A rim-enhancing lesion in segment VI measuring 4 cm, consistent with abscess.",
        [dict(organ="liver", sub_location=["segment VI"], size_mm=[40], enhancement="rim-enhancing",
              lesion_type="abscess")],
        [], F,
    ),
    (
        "Low-attenuation lesion, 6 mm, in the tail of the pancreas (-5 HU).",
        [dict(organ="pancreas", sub_location=["tail"], size_mm=[6], hu=-5, density="hypodense")],
        [], F,
    ),
    (
        "The gallbladder is surgically absent.",
        [], [], NEG,
    ),
    (
        "No focal lesions in the liver, spleen, or pancreas.",
        [], ["liver", "spleen", "pancreas"], NEG,
    ),
    (
        "Hypodense lesion in the left lobe of the liver measuring 15 HU and 2.2 cm.",
        [dict(organ="liver", sub_location=["left lobe"], size_mm=[22], hu=15)],
        [], F,
    ),
    (
        "5-mm hypodensity in the right kidney lower pole, too small to characterize but statistically a cyst.",
        [dict(organ="kidney_right", sub_location=["lower pole"], size_mm=[5], lesion_type="cyst")],
        [], F,
    ),
    (
        "Segments VI/VII: 3.4 cm heterogeneous mass, suspicious for HCC.",
        [dict(organ="liver", sub_location=["segment VI", "segment VII"], size_mm=[34],
              lesion_type="hepatocellular carcinoma")],
        [], F,
    ),
    (
        "Two hypoattenuating lesions in the lower and upper poles of the left kidney measuring 1.7 cm and 1.1 cm, respectively.",
        [dict(organ="kidney_left", sub_location=["lower pole"], size_mm=[17]),
         dict(organ="kidney_left", sub_location=["upper pole"], size_mm=[11])],
        [], F,
    ),
    (
        "Bilateral simple renal cysts, the largest in the right upper pole measuring 4.2 cm.",
        [dict(organ="kidney_left", sub_location=[], size_mm=[], count=1, count_is_lower_bound=True),
         dict(organ="kidney_right", sub_location=["upper pole"], size_mm=[42], count=1, count_is_lower_bound=True)],
        [], F,
    ),
    (
        "Lesions are seen in both kidneys, 11 in the right interpolar region and 29 mm in the left lower pole.",
        [dict(organ="kidney_right", sub_location=["interpolar region"], size_mm=[11]),
         dict(organ="kidney_left", sub_location=["lower pole"], size_mm=[29])],
        [], F,
    ),
    (
        "Pancreatic tail mass measuring 3.5 cm with hepatic metastases.",
        [dict(organ="pancreas", sub_location=["tail"], size_mm=[35], lesion_type="mass"),
         dict(organ="liver", size_mm=[], lesion_type="metastasis", count_is_lower_bound=True)],
        [], F,
    ),
    (
        "KIDNEYS AND URETERS: A simple cyst is present in the midpole of the right kidney, measuring 11 x 9 mm.",
        [dict(organ="kidney_right", sub_location=["interpolar region"], size_mm=[11, 9])],
        [], F,
    ),
    (
        "In the anterior inferior right hepatic lobe (segment V) is a cystic lesion measuring 30 mm.",
        [dict(organ="liver", sub_location=["segment V"], size_mm=[30], density="cystic")],
        [], F,
    ),
    (
        "Renal mass protocol CT or MRI is recommended.",
        [], [], ND,
    ),
    (
        "Cyst in the interpolar left kidney, Bosniak II, measuring 2 cm.",
        [dict(organ="kidney_left", sub_location=["interpolar region"], size_mm=[20])],
        [], F,
    ),
]


def _check(unit, exp: dict, text: str):
    for k, v in exp.items():
        got = getattr(unit, k)
        if k == "size_mm":
            assert len(got) == len(v) and all(abs(a - b) < 1e-6 for a, b in zip(got, v)), (text, k, got, v)
        elif k == "hu":
            assert got is not None and abs(got - v) < 1e-6, (text, k, got, v)
        else:
            assert got == v, (text, k, got, v)


@pytest.mark.parametrize("text,expected,negated_organs,kind", CASES, ids=[c[0][:48] for c in CASES])
def test_hand_written_case(text, expected, negated_organs, kind):
    parsed = parse_report(text)
    assert parsed.sentences[0].kind == kind, (text, parsed.sentences[0].kind)
    positives = parsed.findings
    assert len(positives) == len(expected), (text, [u.model_dump(exclude={"text"}) for u in positives])
    for unit, exp in zip(positives, expected):
        _check(unit, exp, text)
        assert unit.sentence_index == 0 and tuple(unit.span) == tuple(parsed.sentences[0].span)
        assert unit.text == parsed.sentences[0].text
        if unit.size_mm:
            assert unit.volume_ml is not None and unit.volume_ml > 0
    negs = [u.organ for u in parsed.lesions if u.negated]
    assert sorted(negs) == sorted(negated_organs), (text, negs)


def test_case_count():
    assert len(CASES) >= 30
