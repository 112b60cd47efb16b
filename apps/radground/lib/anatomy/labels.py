"""The project's one anatomical vocabulary: organ label ids, names and sub-locations.

Every part that speaks of organs (the synthetic engine, the report parser, the anatomy prior,
the metrics split per organ, the label names sent to Slicer) imports these constants, so an
organ is spelt the same way everywhere.
"""
from __future__ import annotations

#: Label ids of the abdominal organ map written with each synthetic study (0 = background).
ABDOMEN_ORGANS: dict[str, int] = {
    "liver": 1,
    "spleen": 2,
    "kidney_right": 3,
    "kidney_left": 4,
    "pancreas": 5,
    "aorta": 6,
    "vertebra": 7,
    "gallbladder": 8,
}

#: Chest structures painted by the chest engine (and, where they appear, by the abdominal one:
#: lung bases, ribs, stomach). Ids continue ABDOMEN_ORGANS so one label map holds both.
CHEST_STRUCTURES: dict[str, int] = {
    "lung_right": 9,
    "lung_left": 10,
    "pleura": 11,  # parietal pleura + extrapleural fat rim; pleural effusions fill it
    "heart": 12,  # myocardium, chambers, pericardium (pericardial effusions included)
    "trachea_bronchi": 13,
    "esophagus": 14,  # hiatal hernias included
    "thyroid": 15,
    "rib_cage": 16,  # ribs, sternum, clavicles
    "breast": 17,
    "mediastinum": 18,  # mediastinal fat, great vessels other than the aorta, nodes
    "stomach": 19,
}

#: Every structure of the anatomy task's label map (mutually exclusive voxels).
ANATOMY_STRUCTURES: dict[str, int] = {**ABDOMEN_ORGANS, **CHEST_STRUCTURES}

#: The 10 chest regions of Reg2RG / RadGenome-ChestCT (004 §4.1), each a union of structures.
#: Overlaps are resolved by structure, so region masks are disjoint.
CHEST_REGIONS: dict[str, tuple[str, ...]] = {
    "abdomen": ("liver", "spleen", "kidney_right", "kidney_left", "pancreas", "gallbladder", "stomach"),
    "bone": ("vertebra", "rib_cage"),
    "breast": ("breast",),
    "esophagus": ("esophagus",),
    "heart": ("heart",),
    "lung": ("lung_right", "lung_left"),
    "mediastinum": ("mediastinum", "aorta"),
    "pleura": ("pleura",),
    "thyroid": ("thyroid",),
    "trachea and bronchi": ("trachea_bronchi",),
}

#: Region label ids of the region map written with chest studies (labels/regions), in Reg2RG order.
REGION_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(CHEST_REGIONS)}

#: Human-readable names (Slicer segment names, report text).
ORGAN_DISPLAY: dict[str, str] = {
    "liver": "liver",
    "spleen": "spleen",
    "kidney_right": "right kidney",
    "kidney_left": "left kidney",
    "kidney": "kidney",
    "pancreas": "pancreas",
    "aorta": "aorta",
    "vertebra": "vertebra",
    "gallbladder": "gallbladder",
    "lung_right": "right lung",
    "lung_left": "left lung",
    "pleura": "pleura",
    "heart": "heart",
    "trachea_bronchi": "trachea and bronchi",
    "esophagus": "esophagus",
    "thyroid": "thyroid",
    "rib_cage": "ribs and sternum",
    "breast": "breast",
    "mediastinum": "mediastinum",
    "stomach": "stomach",
}

#: Organs in which the synthetic engine places lesions (the K/L/P split of GLeVE's tables).
LESION_ORGANS: tuple[str, ...] = ("liver", "kidney_right", "kidney_left", "pancreas")

#: The organ group used when metrics are split per organ as in 000 Table 1 (K, L, P).
ORGAN_GROUP: dict[str, str] = {
    "liver": "liver",
    "kidney_right": "kidney",
    "kidney_left": "kidney",
    "kidney": "kidney",
    "pancreas": "pancreas",
    "spleen": "spleen",
}

#: Couinaud liver segments, kidney and pancreas parts: the sub-locations a report may name.
LIVER_SEGMENTS: tuple[str, ...] = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")
KIDNEY_PARTS: tuple[str, ...] = ("upper pole", "interpolar region", "lower pole")
PANCREAS_PARTS: tuple[str, ...] = ("head", "uncinate process", "neck", "body", "tail")

SUB_LOCATIONS: dict[str, tuple[str, ...]] = {
    "liver": tuple(f"segment {s}" for s in LIVER_SEGMENTS),
    "kidney_right": KIDNEY_PARTS,
    "kidney_left": KIDNEY_PARTS,
    "kidney": KIDNEY_PARTS,
    "pancreas": PANCREAS_PARTS,
}


def organ_group(organ: str) -> str:
    """Map an organ key to its metrics group (both kidneys -> 'kidney')."""
    return ORGAN_GROUP.get(organ, organ)


def organ_label_names() -> dict[str, int]:
    """Label names for the organ map as MONAI Label's ``labels`` dict (name -> id)."""
    return {ORGAN_DISPLAY[k]: v for k, v in ABDOMEN_ORGANS.items()}


def anatomy_label_names() -> dict[str, int]:
    """Label names of the anatomy task's map (abdominal organs and chest structures)."""
    return {ORGAN_DISPLAY[k]: v for k, v in ANATOMY_STRUCTURES.items()}


def region_of_structure() -> dict[str, str]:
    """Structure key -> chest region name (structures outside every region are absent)."""
    return {s: region for region, members in CHEST_REGIONS.items() for s in members}


def region_map(label_map, structures: dict[str, int] | None = None):
    """Chest region map (REGION_IDS) from a structure map: each voxel takes its structure's region."""
    import numpy as np

    structures = structures or ANATOMY_STRUCTURES
    lab = np.asarray(label_map)
    lut = np.zeros(max(max(structures.values()), int(lab.max(initial=0))) + 1, dtype=np.uint8)
    for s, region in region_of_structure().items():
        if s in structures:
            lut[structures[s]] = REGION_IDS[region]
    return lut[lab]
