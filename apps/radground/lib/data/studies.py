"""The study folder as a MONAI Label local datastore: where each file of a study lives.

Layout under ``<studies>``::

    <id>.nii.gz                     image, int16 HU (the datastore's images)
    labels/final/<id>.nii.gz        lesion (chest: finding) instance map (absent for report-only studies)
    labels/organs/<id>.nii.gz       structure map (ANATOMY_STRUCTURES ids: abdominal organs, chest structures)
    labels/regions/<id>.nii.gz      chest studies: Reg2RG region map (REGION_IDS)
    reports/<id>.txt                report text, UTF-8 (read by infer tasks when a request has none)
    truth/<id>.json                 ground truth (lesions, sentences, links)
    truth/<id>_lesions.nii.gz       lesion instance map, always (for evaluation of report-only studies)

Every file is written to a hidden temporary file in its own folder and moved into place with
``os.replace``, so a reader (or the MONAI Label datastore scan) never sees a half-written file.
Seed ranges per split are fixed here, once: held-out test seeds never reach training. Abdominal
studies are ``synth_<seed>``, chest studies ``chest_<seed>``; one seed can give both.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Iterable, Optional, Union

import nibabel as nib
import numpy as np

#: Seed ranges of the splits. Training must only ever draw from "train".
SPLITS: dict[str, range] = {
    "train": range(0, 10000),
    "val": range(10000, 11000),
    "test": range(20000, 21000),
}

LABELS_FINAL = os.path.join("labels", "final")
LABELS_ORGANS = os.path.join("labels", "organs")
LABELS_REGIONS = os.path.join("labels", "regions")
BODIES = ("abdomen", "chest")
REPORTS = "reports"
TRUTH = "truth"


def split_of(seed: int) -> Optional[str]:
    for name, rng in SPLITS.items():
        if seed in rng:
            return name
    return None


def split_seeds(split: str, n: int, start: int = 0) -> list[int]:
    """The first ``n`` seeds of ``split`` from offset ``start`` (raises when the range is exhausted)."""
    rng = SPLITS[split]
    if start < 0 or start + n > len(rng):
        raise ValueError(f"split {split!r} has {len(rng)} seeds; asked for {n} from offset {start}")
    return list(rng[start : start + n])


def image_path(studies_dir: str, image_id: str) -> str:
    return os.path.join(studies_dir, f"{image_id}.nii.gz")


def label_path(studies_dir: str, image_id: str) -> str:
    return os.path.join(studies_dir, LABELS_FINAL, f"{image_id}.nii.gz")


def organ_path(studies_dir: str, image_id: str) -> str:
    return os.path.join(studies_dir, LABELS_ORGANS, f"{image_id}.nii.gz")


def region_path(studies_dir: str, image_id: str) -> str:
    return os.path.join(studies_dir, LABELS_REGIONS, f"{image_id}.nii.gz")


def report_path(studies_dir: str, image_id: str) -> str:
    return os.path.join(studies_dir, REPORTS, f"{image_id}.txt")


def truth_path(studies_dir: str, image_id: str) -> str:
    return os.path.join(studies_dir, TRUTH, f"{image_id}.json")


def truth_lesions_path(studies_dir: str, image_id: str) -> str:
    return os.path.join(studies_dir, TRUTH, f"{image_id}_lesions.nii.gz")


def _atomic(path: str, write) -> None:
    """Call write(tmp_path) on a hidden temp file beside ``path``, then move it into place."""
    d, name = os.path.split(path)
    os.makedirs(d or ".", exist_ok=True)
    suffix = ".nii.gz" if name.endswith(".nii.gz") else os.path.splitext(name)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=d or ".")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_nifti(path: str, array: np.ndarray, affine: np.ndarray) -> None:
    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.header.set_data_dtype(array.dtype)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    _atomic(path, lambda tmp: nib.save(img, tmp))


def write_text(path: str, text: str) -> None:
    def w(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    _atomic(path, w)


def write_study(study, studies_dir: str, with_label: bool = True) -> dict[str, str]:
    """Write every file of ``study`` (see module docstring); returns {kind: path}."""
    sid = study.study_id
    out = {
        "image": image_path(studies_dir, sid),
        "organs": organ_path(studies_dir, sid),
        "report": report_path(studies_dir, sid),
        "truth": truth_path(studies_dir, sid),
        "truth_lesions": truth_lesions_path(studies_dir, sid),
    }
    save_nifti(out["image"], study.image.astype(np.int16), study.affine)
    save_nifti(out["organs"], study.organs.astype(np.uint8), study.affine)
    save_nifti(out["truth_lesions"], study.lesions.astype(np.uint8), study.affine)
    if getattr(study, "regions", None) is not None:
        out["regions"] = region_path(studies_dir, sid)
        save_nifti(out["regions"], study.regions.astype(np.uint8), study.affine)
    if with_label:
        out["label"] = label_path(studies_dir, sid)
        save_nifti(out["label"], study.lesions.astype(np.uint8), study.affine)
    else:
        stale = label_path(studies_dir, sid)
        if os.path.exists(stale):  # a study regenerated as report-only must not keep an old label
            os.unlink(stale)
    write_text(out["report"], study.report)
    truth = dict(study.truth)
    truth["report_only"] = not with_label
    write_text(out["truth"], json.dumps(truth, indent=1, ensure_ascii=False) + "\n")
    return out


def read_report(studies_dir: str, image_id: str) -> Optional[str]:
    """The report sidecar of ``image_id``, or None when there is none."""
    p = report_path(studies_dir, image_id)
    if not os.path.isfile(p):
        return None
    with open(p, encoding="utf-8") as f:
        return f.read()


def read_truth(studies_dir: str, image_id: str) -> Optional[dict]:
    p = truth_path(studies_dir, image_id)
    if not os.path.isfile(p):
        return None
    with open(p, encoding="utf-8") as f:
        return json.load(f)


def body_part_of(studies_dir: str, image_id: str) -> Optional[str]:
    """'abdomen' / 'chest' from the study's truth, None when it has none (real data)."""
    try:
        truth = read_truth(studies_dir, image_id)
    except (OSError, ValueError):
        return None
    return truth.get("region") if isinstance(truth, dict) else None


def list_studies(studies_dir: str) -> list[str]:
    """Image ids in ``studies_dir`` (files <id>.nii.gz at the top level, hidden files skipped)."""
    if not os.path.isdir(studies_dir):
        return []
    return sorted(n[: -len(".nii.gz")] for n in os.listdir(studies_dir) if n.endswith(".nii.gz") and not n.startswith("."))


def is_report_only(seed: int, fraction: float) -> bool:
    """Deterministic per seed (independent of which other seeds are generated)."""
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    return bool(np.random.default_rng([int(seed), 0x0E9]).random() < fraction)


def generate_dataset(
    studies_dir: str,
    seeds: Iterable[int],
    preset: str = "default",
    report_only_fraction: Union[float, Iterable[int]] = 0.0,
    on_study=None,
    body: str = "abdomen",
) -> list[dict]:
    """Generate and write the studies of ``seeds``; returns one summary dict per study.

    ``report_only_fraction`` is either a fraction (studies chosen per seed, deterministically)
    or an explicit collection of seeds that are written without labels/final. ``body`` is
    abdomen, chest, or both (two studies per seed).
    """
    bodies = BODIES if body == "both" else (body,)
    if any(b not in BODIES for b in bodies):
        raise ValueError(f"unknown body {body!r}; choose abdomen, chest or both")
    from lib.data.synthetic.study import generate_study

    explicit = None if isinstance(report_only_fraction, (int, float)) else {int(s) for s in report_only_fraction}
    out = []
    for seed in seeds:
        seed = int(seed)
        report_only = (seed in explicit) if explicit is not None else is_report_only(seed, float(report_only_fraction))
        for b in bodies:
            study = generate_study(seed, preset, body=b)
            paths = write_study(study, studies_dir, with_label=not report_only)
            info = {
                "study_id": study.study_id,
                "seed": seed,
                "body": b,
                "split": split_of(seed),
                "preset": preset,
                "report_only": report_only,
                "shape": list(study.image.shape),
                "n_lesions": len(study.truth["lesions"]) + len(study.truth.get("findings", [])),
                "paths": paths,
            }
            out.append(info)
            if on_study is not None:
                on_study(info)
    return out
