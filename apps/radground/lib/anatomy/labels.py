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
