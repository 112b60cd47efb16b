"""Digitally reconstructed radiographs (DRR) of the synthetic chest CT, with boxes projected to 2D.

MedGrounder is a chest *radiograph* model (003); the project's data are CT. A frontal (PA/AP)
radiograph is the CT's attenuation integrated along the antero-posterior axis, so every CT study
gives a radiograph whose findings and anatomy are known: a 3D voxel box (x, y, z) projects to the
2D box (x, z), and so do the sentence targets of both training stages.

Physics, kept simple on purpose: parallel beam along array axis y (anterior-posterior in the
engine's LPS arrays), linear attenuation mu = mu_water * (1 + HU / 1000) with
mu_water = 0.02 / mm (about 70 keV), air and below clipped to 0, line integral P = sum(mu * dy),
radiograph intensity I = 1 - exp(-P) (bone and fluid bright, lungs dark, as on film). No cone-beam
magnification, scatter or detector blur: a synthetic training signal, not a simulator.

The radiograph's arrays are (x, z): x runs to the patient's left, z superior (the CT's own axes
with y dropped); its affine is the CT affine restricted to those axes, in the 4x4 form the box
utilities and MONAI transforms take (third axis a unit placeholder).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from lib.metrics.boxes import instance_boxes

MU_WATER_PER_MM = 0.02
PROJECTION_AXIS = 1  # array axis y: anterior <-> posterior


@dataclass
class Radiograph:
    image: np.ndarray  # (X, Z) float32 in [0, 1]
    spacing: tuple[float, float]
    affine: np.ndarray  # 4x4: (x, z, -) index -> world mm of the CT's x and z
    finding_boxes: dict[int, np.ndarray] = field(default_factory=dict)  # finding id -> (4,) projected box
    structures: Optional[np.ndarray] = None  # (X, Z) structure id with the longest path along the beam


def drr(hu: np.ndarray, spacing: Sequence[float], axis: int = PROJECTION_AXIS) -> np.ndarray:
    """Parallel-beam radiograph of a HU volume along ``axis``: 1 - exp(-integral of mu), float32 in [0, 1)."""
    mu = np.clip(MU_WATER_PER_MM * (1.0 + np.asarray(hu, np.float32) / 1000.0), 0.0, None)
    path = mu.sum(axis=axis) * float(spacing[axis])
    return (1.0 - np.exp(-path)).astype(np.float32)


def project_boxes(boxes, axis: int = PROJECTION_AXIS) -> np.ndarray:
    """(M, 6) 3D voxel corner boxes -> (M, 4) 2D boxes of the projection (``axis`` dropped)."""
    b = np.asarray(boxes, float).reshape(-1, 6)
    keep = [a for a in range(3) if a != axis]
    return b[:, keep + [a + 3 for a in keep]]


def project_affine(affine: np.ndarray, axis: int = PROJECTION_AXIS) -> np.ndarray:
    """4x4 affine of the projection: the CT's rows/columns of the two kept axes, a unit third axis."""
    A = np.asarray(affine, float)
    keep = [a for a in range(3) if a != axis]
    out = np.eye(4)
    for i, a in enumerate(keep):
        for j, b in enumerate(keep):
            out[i, j] = A[a, b]
        out[i, 3] = A[a, 3]
    return out


def dominant_structure(structures: np.ndarray, axis: int = PROJECTION_AXIS) -> np.ndarray:
    """(X, Z) id of the structure with the most voxels along each ray (0 where the ray meets none)."""
    lab = np.asarray(structures).astype(np.int64)
    n = int(lab.max(initial=0)) + 1
    counts = np.stack([(lab == k).sum(axis=axis) for k in range(1, n)]) if n > 1 else np.zeros((1,) + tuple(np.delete(lab.shape, axis)))
    best = counts.argmax(0) + 1
    return np.where(counts.max(0) > 0, best, 0).astype(np.int32)


def radiograph_from_study(study, axis: int = PROJECTION_AXIS) -> Radiograph:
    """The frontal radiograph of a synthetic study (``lib.data.synthetic.study.Study``): image,
    geometry, every finding's projected box, and the dominant structure per pixel."""
    ids, boxes = instance_boxes(study.lesions)
    proj = project_boxes(boxes, axis) if len(boxes) else np.zeros((0, 4))
    spacing = tuple(float(s) for a, s in enumerate(study.spacing) if a != axis)
    return Radiograph(
        image=drr(study.image, study.spacing, axis),
        spacing=spacing,  # type: ignore[arg-type]
        affine=project_affine(study.affine, axis),
        finding_boxes={int(i): b for i, b in zip(ids, proj)},
        structures=dominant_structure(study.organs, axis),
    )


def beam_axis(affine: np.ndarray) -> int:
    """The array axis closest to the world antero-posterior axis (RAS/LPS row 1) of a CT affine:
    the frontal beam's direction, whatever the volume's array order."""
    return int(np.argmax(np.abs(np.asarray(affine, float)[1, :3])))


def radiograph_of_ct(hu: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Frontal DRR of any CT volume (``hu`` (X, Y, Z) in HU, its 4x4 voxel -> world affine):
    (image (2D, [0, 1)), its 4x4 affine, the beam's array axis). Boxes of the CT map onto it with
    ``project_boxes(boxes, axis)``. What the 2D MedGrounder trains on, from the CT studies of a
    datastore."""
    A = np.asarray(affine, float)
    axis = beam_axis(A)
    spacing = np.linalg.norm(A[:3, :3], axis=0)
    return drr(hu, spacing, axis), project_affine(A, axis), axis


def write_radiograph(path: str, image: np.ndarray, affine: np.ndarray) -> None:
    """A radiograph as a 2D NIfTI (float32, the projected affine), readable by the app's loaders."""
    from lib.data.studies import save_nifti

    save_nifti(path, np.asarray(image, np.float32), affine)


def write_radiograph_studies(ct_studies_dir: str, out_dir: str, image_ids: Sequence[str], suffix: str = "_cxr") -> list[str]:
    """The frontal radiograph of each CT study ``<id>`` as ``out_dir/<id><suffix>.nii.gz``, with the
    study's report beside it (the datastore sidecar): a radiograph datastore for ``medgrounder_cxr``."""
    import os

    import nibabel as nib

    from lib.data.studies import image_path, read_report, report_path, write_text

    os.makedirs(out_dir, exist_ok=True)
    out = []
    for sid in image_ids:
        ct = nib.load(image_path(ct_studies_dir, sid))
        img, aff, _ = radiograph_of_ct(np.asarray(ct.dataobj, np.float32), ct.affine)
        rid = f"{sid}{suffix}"
        write_radiograph(image_path(out_dir, rid), img, aff)
        text = read_report(ct_studies_dir, sid)
        if text is not None:
            os.makedirs(os.path.dirname(report_path(out_dir, rid)), exist_ok=True)
            write_text(report_path(out_dir, rid), text)
        out.append(rid)
    return out
