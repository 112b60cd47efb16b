"""A small synthetic study as DICOM + a grounding answer built from its truth (shared by the SEG and SR tests).

The answer grounds every true lesion except the second, which is left ungrounded with a reason,
so its label value is missing from the map (SEG segment numbers must still run 1..N).
"""
from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pydicom

from lib.data.dicom_export import export_study
from lib.data.studies import generate_dataset, image_path, read_report
from lib.schema import Finding, GroundingResult, ModelInfo, Segment, SentenceRef, TaskType

STUDY = "synth_20002"


def make_study(base: str) -> dict:
    studies = os.path.join(base, "studies")
    generate_dataset(studies, [20002], preset="tiny", body="abdomen")
    report = read_report(studies, STUDY)
    truth = json.load(open(os.path.join(studies, "truth", f"{STUDY}.json")))
    inst_img = nib.load(os.path.join(studies, "truth", f"{STUDY}_lesions.nii.gz"))
    inst = np.asarray(inst_img.dataobj).astype(np.int16)
    lesions = truth["lesions"]
    assert len(lesions) >= 3, "the fixture needs three lesions"
    dropped = lesions[1]["id"]
    label = np.where(inst == dropped, 0, inst).astype(np.uint8)
    label_file = os.path.join(base, "label.nii.gz")
    nib.save(nib.Nifti1Image(label, inst_img.affine), label_file)
    findings, segments = [], []
    for les in lesions:
        text = report[les["span"][0] : les["span"][1]]
        grounded = les["id"] != dropped
        name = f"lesion {les['id']} — {les['organ']} {' '.join(les['sub_location'])}".strip()
        fid = f"f{les['id']}"
        findings.append(
            Finding(
                id=fid,
                sentence=SentenceRef(text=text, span=list(les["span"])),
                kind="finding",
                organ=les["organ"],
                grounded=grounded,
                label=les["id"] if grounded else None,
                label_name=name if grounded else None,
                score=0.9 if grounded else None,
                score_name="verification_score",
                reason=None if grounded else "no response above the adaptive threshold in the reported organ",
            )
        )
        if grounded:
            segments.append(Segment(label=les["id"], name=name, finding_ids=[fid]))
    grounding = GroundingResult(
        model=ModelInfo(name="gleve", version="0123abcd", task_type=TaskType.LESION_GROUNDING), findings=findings, segments=segments
    )
    dicom = export_study(image_path(studies, STUDY), os.path.join(base, "dicom"), STUDY, report)
    ct = [pydicom.dcmread(f) for f in dicom.ct_files]
    return dict(
        studies=studies, report=report, truth=truth, label=label, label_affine=inst_img.affine, label_file=label_file,
        grounding=grounding, dicom=dicom, ct=ct, dropped=dropped, image_file=image_path(studies, STUDY),
    )
