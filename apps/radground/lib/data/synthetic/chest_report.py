"""Writes a chest CT report organised by the 10 Reg2RG regions, with sentence -> region -> finding truth.

Layout: title, CLINICAL HISTORY, TECHNIQUE, COMPARISON, FINDINGS with one line per region
(``Lungs: ...``, ``Pleura: ...``; 75 % of reports) or unlabelled prose paragraphs (25 %), then
IMPRESSION. Every region is described: regions without a finding get normal or negative
statements that are true for the study (a region with a pleural effusion never says "No pleural
effusion"). Sentence truth carries the region, the finding ids and the kind, as the abdominal
writer's does; ``region_reports`` holds each region's text without its heading, the target
Reg2RG learns to write (004 §3.4).
"""
from __future__ import annotations

import numpy as np

from lib.anatomy.labels import CHEST_REGIONS

from .chest_findings import ChestFinding
from .report_writer import ReportBuilder, Sent, add_impression, render_with_truth

N, NEG = "normal", "negative"
#: Region -> [(text, kind, structures, finding kinds that make it false)].
CHEST_NORMALS: dict[str, list] = {
    "lung": [("The lungs are clear.", N, ["lung_right", "lung_left"], ("nodule", "mass", "emphysema", "consolidation", "atelectasis")),
             ("No pulmonary nodules or masses.", NEG, ["lung_right", "lung_left"], ("nodule", "mass")),
             ("No consolidation.", NEG, ["lung_right", "lung_left"], ("consolidation",)),
             ("No focal airspace opacity.", NEG, ["lung_right", "lung_left"], ("consolidation", "atelectasis", "mass"))],
    "trachea and bronchi": [("The trachea and main bronchi are patent.", N, ["trachea_bronchi"], ()),
                            ("The central airways are patent.", N, ["trachea_bronchi"], ()),
                            ("No endobronchial lesion.", NEG, ["trachea_bronchi"], ())],
    "pleura": [("No pleural effusion or pneumothorax.", NEG, ["pleura"], ("pleural_effusion",)),
               ("No pleural effusion.", NEG, ["pleura"], ("pleural_effusion",)),
               ("No pneumothorax.", NEG, ["pleura"], ()),
               ("No pleural thickening.", NEG, ["pleura"], ())],
    "mediastinum": [("No mediastinal or hilar lymphadenopathy.", NEG, ["mediastinum"], ()),
                    ("No enlarged mediastinal lymph nodes.", NEG, ["mediastinum"], ()),
                    ("The thoracic aorta is normal in caliber.", N, ["aorta"], ())],
    "heart": [("Heart size is normal.", N, ["heart"], ("cardiomegaly",)),
              ("The heart is normal in size.", N, ["heart"], ("cardiomegaly",)),
              ("No pericardial effusion.", NEG, ["heart"], ("pericardial_effusion",))],
    "esophagus": [("The esophagus is unremarkable.", N, ["esophagus"], ("hiatal_hernia",)),
                  ("The esophagus is normal in caliber.", N, ["esophagus"], ("hiatal_hernia",)),
                  ("No esophageal wall thickening.", NEG, ["esophagus"], ())],
    "thyroid": [("The thyroid gland is unremarkable.", N, ["thyroid"], ("thyroid_nodule",)),
                ("The visualized thyroid is normal.", N, ["thyroid"], ("thyroid_nodule",)),
                ("No thyroid nodule.", NEG, ["thyroid"], ("thyroid_nodule",))],
    "breast": [("The breasts are unremarkable.", N, ["breast"], ()),
               ("No suspicious breast mass.", NEG, ["breast"], ()),
               ("No axillary lymphadenopathy.", NEG, ["breast"], ())],
    "bone": [("No suspicious osseous lesion.", NEG, ["vertebra", "rib_cage"], ()),
             ("No acute fracture.", NEG, ["vertebra", "rib_cage"], ()),
             ("The osseous structures are unremarkable.", N, ["vertebra", "rib_cage"], ("degenerative",))],
    "abdomen": [("The visualized upper abdomen is unremarkable.", N, ["liver", "spleen", "stomach"], ()),
                ("Limited images of the upper abdomen are unremarkable.", N, ["liver", "spleen", "stomach"], ()),
                ("No focal lesion in the visualized liver or spleen.", NEG, ["liver", "spleen"], ())],
}
#: Region -> section headings a radiologist uses for it.
CHEST_LABELS: dict[str, list[str]] = {
    "lung": ["Lungs", "Lung parenchyma", "Pulmonary parenchyma"],
    "trachea and bronchi": ["Trachea and bronchi", "Airways", "Central airways"],
    "pleura": ["Pleura", "Pleural spaces", "Pleurae"],
    "mediastinum": ["Mediastinum", "Mediastinum and hila", "Mediastinum and lymph nodes"],
    "heart": ["Heart", "Heart and pericardium", "Cardiac"],
    "esophagus": ["Esophagus"],
    "thyroid": ["Thyroid", "Thyroid gland", "Lower neck"],
    "breast": ["Breasts", "Breast", "Chest wall and breasts"],
    "bone": ["Bones", "Osseous structures", "Musculoskeletal"],
    "abdomen": ["Upper abdomen", "Visualized upper abdomen", "Limited upper abdomen"],
}
CHEST_HISTORY = [
    "Cough.", "Shortness of breath.", "Chest pain.", "Follow-up of pulmonary nodule.", "Staging of known breast cancer.",
    "Hemoptysis.", "Weight loss, smoker.", "Fever and cough.", "Dyspnea on exertion.", "Abnormal chest radiograph.",
]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def finding_sentence(r: np.random.Generator, f: ChestFinding) -> str:
    """One sentence describing ``f`` (size, location, severity as the radiologist would say it)."""
    k, d = f.kind, f.size_mm
    if k == "nodule":
        dens = f.attributes["density"]
        return str(r.choice([
            f"A {d[0]:g} mm {dens} nodule in the {f.location}.",
            f"There is a {d[0]:g} mm {dens} nodule in the {f.location}.",
            f"{_cap(dens)} nodule in the {f.location} measuring {d[0]:g} x {d[1]:g} mm.",
            f"A {dens} pulmonary nodule is seen in the {f.location}, measuring {d[0]:g} mm.",
        ]))
    if k == "mass":
        a, b = d[0] / 10, d[1] / 10
        return str(r.choice([
            f"A {a:.1f} x {b:.1f} cm {f.attributes['margin']} mass in the {f.location}.",
            f"There is a {f.attributes['margin']} mass in the {f.location} measuring {a:.1f} x {b:.1f} cm, suspicious for malignancy.",
        ]))
    if k == "emphysema":
        return str(r.choice([f"{_cap(f.severity)} centrilobular emphysema, predominantly in the upper lobes.",
                             f"There is {f.severity} upper lobe predominant centrilobular emphysema."]))
    if k == "consolidation":
        return str(r.choice([f"Consolidation in the {f.location}.", f"There is patchy consolidation in the {f.location}, which may represent pneumonia."]))
    if k == "atelectasis":
        return str(r.choice([f"Subsegmental atelectasis in the {f.location}.", f"Plate-like atelectasis in the {f.location}."]))
    if k == "pleural_effusion":
        return str(r.choice([f"{_cap(f.severity)} {f.side} pleural effusion.", f"There is a {f.severity} {f.side} pleural effusion."]))
    if k == "cardiomegaly":
        return str(r.choice(["The heart is enlarged.", "Cardiomegaly.", f"{_cap(f.severity)} cardiomegaly."]))
    if k == "pericardial_effusion":
        return str(r.choice([f"{_cap(f.severity)} pericardial effusion.", f"There is a {f.severity} pericardial effusion measuring up to {d[0]:g} mm."]))
    if k == "thyroid_nodule":
        return str(r.choice([f"A {d[0]:g} mm hypodense nodule in the {f.side} thyroid lobe.",
                             f"{d[0]:g} mm hypoattenuating nodule in the {f.side} lobe of the thyroid gland."]))
    if k == "degenerative":
        return str(r.choice([f"{_cap(f.severity)} degenerative changes of the thoracic spine with anterior osteophytes.", "Degenerative changes of the thoracic spine."]))
    if k == "hiatal_hernia":
        return str(r.choice([f"{_cap(f.severity)} hiatal hernia.", f"There is a {f.severity} hiatal hernia."]))
    raise ValueError(f"no wording for finding kind {k!r}")


def _effusion_sentences(r, effs: list[ChestFinding]) -> list[Sent]:
    if len(effs) == 2:
        text = str(r.choice([f"{_cap(effs[0].severity)} bilateral pleural effusions.", f"There are {effs[0].severity} bilateral pleural effusions."]))
        return [Sent(text, "findings", "finding", ["pleura"], [e.id for e in effs], template="effusion_bilateral")]
    e = effs[0]
    return [Sent(finding_sentence(r, e), "findings", "finding", ["pleura"], [e.id], template="effusion")]


def _region_sentences(r, region: str, found: list[ChestFinding]) -> list[Sent]:
    out: list[Sent] = []
    effs = [f for f in found if f.kind == "pleural_effusion"]
    if effs:
        out += _effusion_sentences(r, effs)
    for f in found:
        if f.kind != "pleural_effusion":
            out.append(Sent(finding_sentence(r, f), "findings", "finding", [f.structure], [f.id], template=f.kind))
    kinds = {f.kind for f in found}
    pool = [n for n in CHEST_NORMALS[region] if not (kinds & set(n[3]))]
    k = (0 if found else 1) + int(r.random() < 0.5)
    if not found and not pool:
        raise AssertionError(f"region {region} has no true normal statement")
    for i in sorted(r.choice(len(pool), size=min(max(k, 0), len(pool)), replace=False)) if pool and k else []:
        text, kind, structs, _ = pool[i]
        out.append(Sent(text, "findings", kind, list(structs)))
    return out


def _merge_nodules(items: list[list[Sent]], findings: list[ChestFinding]) -> list[list[Sent]]:
    """Two or more lung nodules are summed up in the impression as radiologists do, in one sentence
    linked to all of them ("Multiple pulmonary nodules, the largest ..."): a multi-box sentence for
    phrase grounding (003), beside the bilateral effusions. Their single restatements are dropped
    (their wording was drawn all the same, so the rest of the report stream is unchanged)."""
    nodules = [f for f in findings if f.kind == "nodule"]
    if len(nodules) < 2:
        return items
    big = max(nodules, key=lambda f: f.size_mm[0])
    sides = {f.side for f in nodules}
    where = "bilateral" if len(sides) == 2 else f"{next(iter(sides))}-sided"
    text = f"Multiple {where} pulmonary nodules, the largest measuring {big.size_mm[0]:g} mm in the {big.location}."
    ids = [f.id for f in nodules]
    merged = Sent(text, "impression", "finding", sorted({f.structure for f in nodules}), ids, restates=True, template="nodules_multiple", region="lung")
    out, placed = [], False
    for item in items:
        if item[0].template == "nodule":
            if not placed:
                out.append([merged])
                placed = True
            continue
        out.append(item)
    return out


def _impression(r, findings: list[ChestFinding]) -> list[list[Sent]]:
    if not findings:
        return [[Sent(str(r.choice(["No acute intrathoracic abnormality.", "No acute cardiopulmonary process."])), "impression", "normal")]]
    items = []
    for f in findings:
        if f.kind == "pleural_effusion" and f.side == "left" and any(g.kind == "pleural_effusion" and g.side == "right" for g in findings):
            continue
        if f.kind == "pleural_effusion" and sum(g.kind == "pleural_effusion" for g in findings) == 2:
            ids, text = [g.id for g in findings if g.kind == "pleural_effusion"], f"{_cap(f.severity)} bilateral pleural effusions."
        else:
            ids, text = [f.id], finding_sentence(r, f)
        items.append([Sent(text, "impression", "finding", [f.structure], ids, restates=True, template=f.kind, region=f.region)])
    items = _merge_nodules(items, findings)
    if any(f.kind == "nodule" and f.size_mm[0] >= 6 for f in findings):
        items.append([Sent("Follow-up chest CT in 6 to 12 months is recommended.", "impression", "non_diagnostic")])
    return items


def write_chest_report(r: np.random.Generator, findings: list[ChestFinding], slice_mm: float) -> tuple[str, list[dict], dict[str, str]]:
    """Report text, truth sentences (with spans and regions) and region -> region report text."""
    by_region = {reg: [f for f in findings if f.region == reg] for reg in CHEST_REGIONS}
    b = ReportBuilder()
    title = str(r.choice(["CT CHEST WITH CONTRAST", "CT OF THE CHEST WITH INTRAVENOUS CONTRAST", "CT THORAX WITH CONTRAST"]))
    b.line([Sent(("EXAMINATION: " if r.random() < 0.5 else "") + title, "title", "non_diagnostic")])
    b.blank()
    b.line([Sent(f"{r.choice(['CLINICAL HISTORY', 'INDICATION'])}: {r.choice(CHEST_HISTORY)}", "history", "non_diagnostic")])
    b.blank()
    b.line([Sent(f"TECHNIQUE: Axial images of the chest were obtained after intravenous contrast and reconstructed at {slice_mm:g} mm.", "technique", "non_diagnostic")])
    b.blank()
    b.line([Sent("COMPARISON: None.", "comparison", "non_diagnostic")])
    b.blank()
    b.line([Sent("FINDINGS:", "findings", "non_diagnostic")])
    order = ["lung", "trachea and bronchi", "pleura", "mediastinum", "heart", "esophagus", "thyroid", "breast", "bone", "abdomen"]
    if r.random() < 0.3:
        order[3], order[4] = order[4], order[3]
    blocks = []
    for reg in order:
        sents = _region_sentences(r, reg, by_region[reg])
        for s in sents:
            s.region = reg
        blocks.append((reg, sents))
    region_reports = {reg: " ".join(s.text for s in sents) for reg, sents in blocks}
    if r.random() < 0.75:
        upper = r.random() < 0.3
        for reg, sents in blocks:
            label = str(r.choice(CHEST_LABELS[reg]))
            label = label.upper() if upper else label
            first = Sent(f"{label}: {sents[0].text}", **{k: v for k, v in sents[0].__dict__.items() if k != "text"})
            b.line([first] + sents[1:])
    else:
        flat = [s for _, ss in blocks for s in ss]
        cuts = sorted(int(c) for c in r.choice(np.arange(1, len(flat)), size=2, replace=False))
        for a, z in zip([0] + cuts, cuts + [len(flat)]):
            b.line(flat[a:z])
    add_impression(b, r, _impression(r, findings))
    text, sentences = render_with_truth(b)
    return text, sentences, region_reports
