"""Implicit free-form queries per synthetic study, with their target masks (MedVol-R1, 002 §3.1.1).

M3D-Seg replaces label names by free-form descriptions, and the paper's paraphrased KiTS23 set
couples lesion attributes with anatomical relations ("the kidney containing an obvious
fluid-filled sac"). The synthetic engine knows every organ and lesion, so a study yields:

* ``organ_function``: an organ named by what it does ("the organ that stores bile");
* ``organ_paraphrase``: an organ named by a synonym ("the hepatic parenchyma");
* ``lesion_organ``: the organ that holds a lesion of an attribute ("the kidney that contains the
  cyst"): resolving it needs the image (which kidney?), so it is only emitted when exactly one
  organ of the family holds such a lesion;
* ``lesion``: a lesion by attribute + location ("the cyst in the upper pole of the left kidney"),
  only when the description is unique and the lesion has at least ``min_lesion_voxels`` voxels
  on the study's grid (at the tiny preset most lesions are a voxel or two).

Every query carries what its mask is made of (structure ids of the structure map and/or lesion
instance ids), so the mask is rebuilt on any grid: :meth:`Query.mask`. Phrasings are drawn with
a seeded generator; ``phrasing="train"`` keeps the first phrasing of each list out of the draw, so
held-out queries can use wordings never seen in training (``"heldout"``), as the paper's
paraphrased test set does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from lib.anatomy.labels import ANATOMY_STRUCTURES, ORGAN_DISPLAY

QUERY_KINDS = ("organ_function", "organ_paraphrase", "lesion_organ", "lesion")

#: structure -> phrasings naming it by function (medical knowledge, not its name)
FUNCTION_PHRASES: dict[str, tuple[str, ...]] = {
    "gallbladder": ("the organ that stores bile", "the sac that concentrates bile beneath the liver", "the reservoir that releases bile after a fatty meal"),
    "liver": ("the organ that secretes bile", "the organ that detoxifies the blood and makes albumin", "the largest solid organ of the upper abdomen"),
    "spleen": ("the organ that filters old red blood cells", "the lymphoid organ in the left upper quadrant", "the organ removed after a traumatic rupture to stop bleeding"),
    "pancreas": ("the gland that produces insulin", "the organ that secretes digestive enzymes into the duodenum", "the retroperitoneal gland behind the stomach"),
    "kidney_right": ("the right organ that filters blood into urine", "the right retroperitoneal organ that makes urine", "the urine-producing organ on the right"),
    "kidney_left": ("the left organ that filters blood into urine", "the left retroperitoneal organ that makes urine", "the urine-producing organ on the left"),
    "aorta": ("the main artery that carries blood from the heart", "the largest artery of the body", "the vessel that gives off the renal arteries"),
    "vertebra": ("the bones that protect the spinal cord", "the bony column of the back"),
    "heart": ("the organ that pumps blood", "the muscular pump of the circulation"),
    "lung_right": ("the right organ of gas exchange", "the right organ that oxygenates the blood"),
    "lung_left": ("the left organ of gas exchange", "the left organ that oxygenates the blood"),
    "trachea_bronchi": ("the airway that carries air to the lungs", "the windpipe and its main branches"),
    "esophagus": ("the tube that carries food to the stomach", "the muscular tube behind the trachea that swallowed food passes"),
    "thyroid": ("the gland that makes thyroxine", "the butterfly-shaped gland in the neck"),
    "stomach": ("the organ that digests food with acid", "the organ between the oesophagus and the duodenum"),
}

#: structure -> synonyms (terminology the label name does not use)
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "liver": ("the hepatic parenchyma", "the hepar"),
    "gallbladder": ("the cholecyst", "the biliary vesicle"),
    "spleen": ("the splenic parenchyma", "the lien"),
    "pancreas": ("the pancreatic gland", "the pancreatic parenchyma"),
    "kidney_right": ("the right renal organ", "the right nephric organ"),
    "kidney_left": ("the left renal organ", "the left nephric organ"),
    "aorta": ("the abdominal aortic lumen", "the great artery"),
    "vertebra": ("the vertebral bodies", "the spine"),
}

#: lesion density -> attribute phrasings ("the kidney that contains <...>")
ATTRIBUTE_PHRASES: dict[str, tuple[str, ...]] = {
    "cystic": ("the cyst", "an obvious fluid-filled sac", "a water-density lesion"),
    "hypodense": ("the hypodense lesion", "a low-attenuation lesion", "a dark focal lesion"),
    "hyperdense": ("the hyperdense lesion", "a high-attenuation lesion", "a bright focal lesion"),
}
#: lesion density -> noun phrase when the lesion itself is the target
LESION_NOUNS: dict[str, tuple[str, ...]] = {
    "cystic": ("the cyst", "the fluid-filled lesion", "the water-density lesion"),
    "hypodense": ("the hypodense lesion", "the low-attenuation lesion", "the dark lesion"),
    "hyperdense": ("the hyperdense lesion", "the high-attenuation lesion", "the bright lesion"),
}
#: organ family (what "the kidney" can mean) -> member structures
FAMILIES: dict[str, tuple[str, ...]] = {
    "kidney": ("kidney_right", "kidney_left"),
    "liver": ("liver",),
    "pancreas": ("pancreas",),
}
FAMILY_OF = {s: fam for fam, members in FAMILIES.items() for s in members}
#: phrasing sets
PHRASINGS = ("all", "train", "heldout")


@dataclass(frozen=True)
class Query:
    """One free-form query and what its target mask is made of."""

    study_id: str
    text: str
    kind: str
    target: str  # structure name, or "lesion <id>"
    structure_ids: tuple[int, ...] = ()
    lesion_ids: tuple[int, ...] = ()

    def mask(self, organs: np.ndarray, lesions: Optional[np.ndarray] = None) -> np.ndarray:
        """Boolean target mask on the grid of the given structure / lesion instance maps."""
        m = np.isin(organs, self.structure_ids) if self.structure_ids else np.zeros(organs.shape, bool)
        if self.lesion_ids:
            if lesions is None:
                raise ValueError(f"query {self.text!r} targets lesions: the lesion instance map is needed")
            m |= np.isin(lesions, self.lesion_ids)
        return m

    def to_dict(self) -> dict:
        return asdict(self)


def _pick(rng: np.random.Generator, options: Sequence[str], phrasing: str) -> str:
    """One phrasing: ``train`` never draws the first (held-out) one, ``heldout`` always does."""
    if phrasing not in PHRASINGS:
        raise ValueError(f"phrasing must be one of {PHRASINGS}, got {phrasing!r}")
    if phrasing == "heldout" or len(options) == 1:
        return options[0]
    pool = options[1:] if phrasing == "train" else options
    return pool[int(rng.integers(len(pool)))]


def _organ_name(structure: str) -> str:
    return ORGAN_DISPLAY.get(structure, structure.replace("_", " "))


def study_queries(
    study_id: str,
    truth: dict,
    organs: np.ndarray,
    lesions: Optional[np.ndarray] = None,
    seed: int = 0,
    phrasing: str = "all",
    kinds: Iterable[str] = QUERY_KINDS,
    min_organ_voxels: int = 20,
    min_lesion_voxels: int = 8,
) -> list[Query]:
    """The implicit queries of one study (order fixed; wording drawn from ``seed``).

    ``truth`` is the study's truth JSON (its ``lesions`` list: organ, sub_location, density);
    only targets visible on this grid (``min_*_voxels``) become queries.
    """
    kinds = set(kinds)
    unknown = kinds - set(QUERY_KINDS)
    if unknown:
        raise ValueError(f"unknown query kinds {sorted(unknown)}; known: {QUERY_KINDS}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x0E57]))
    present = {name: int(np.count_nonzero(organs == sid)) for name, sid in ANATOMY_STRUCTURES.items()}
    out: list[Query] = []

    def organ_query(kind: str, structure: str, phrases: dict) -> None:
        if structure in phrases and present.get(structure, 0) >= min_organ_voxels:
            out.append(Query(study_id, _pick(rng, phrases[structure], phrasing), kind, structure, (ANATOMY_STRUCTURES[structure],)))

    for structure in ANATOMY_STRUCTURES:
        if "organ_function" in kinds:
            organ_query("organ_function", structure, FUNCTION_PHRASES)
        if "organ_paraphrase" in kinds:
            organ_query("organ_paraphrase", structure, PARAPHRASES)

    les_truth = [l for l in truth.get("lesions") or [] if l.get("organ") in FAMILY_OF and l.get("density") in ATTRIBUTE_PHRASES]
    if "lesion_organ" in kinds:
        done = set()
        for les in les_truth:
            fam, density = FAMILY_OF[les["organ"]], les["density"]
            holders = {l["organ"] for l in les_truth if FAMILY_OF[l["organ"]] == fam and l["density"] == density}
            if (fam, density) in done or len(holders) != 1 or present.get(les["organ"], 0) < min_organ_voxels:
                continue
            done.add((fam, density))
            text = f"the {fam} that contains {_pick(rng, ATTRIBUTE_PHRASES[density], phrasing)}"
            out.append(Query(study_id, text, "lesion_organ", les["organ"], (ANATOMY_STRUCTURES[les["organ"]],)))
    if "lesion" in kinds and lesions is not None:
        for les in les_truth:
            key = (les["organ"], tuple(les.get("sub_location") or ()), les["density"])
            same = [l for l in les_truth if (l["organ"], tuple(l.get("sub_location") or ()), l["density"]) == key]
            n_vox = int(np.count_nonzero(lesions == les["id"]))
            if len(same) != 1 or n_vox < min_lesion_voxels:
                continue
            where = " ".join(les.get("sub_location") or ())
            place = f"in the {where} of the {_organ_name(les['organ'])}" if where else f"in the {_organ_name(les['organ'])}"
            text = f"{_pick(rng, LESION_NOUNS[les['density']], phrasing)} {place}"
            out.append(Query(study_id, text, "lesion", f"lesion {les['id']}", (), (int(les["id"]),)))
    return out
