"""One synthetic chest CT study: phantom + findings + region-organised report + truth.

Same conventions as :mod:`study` (array index [i, j, k] = LPS x, y, z; RAS affine; four
independent random streams so anatomy, findings and report are identical at every preset).
Besides the structure map (``organs``) a chest study carries its Reg2RG region map
(``regions``, :data:`lib.anatomy.labels.REGION_IDS`) and the finding instance map (``lesions``).
"""
from __future__ import annotations

import numpy as np

from lib.anatomy.labels import ANATOMY_STRUCTURES, REGION_IDS, region_map

from .chest_findings import draw_plan, instance_map, place_findings
from .chest_phantom import build_chest_anatomy
from .chest_report import write_chest_report
from .phantom import rasterize
from .study import PRESETS, Study, _r, affine_for, make_grid, render, study_id_for


def generate_chest_study(seed: int, preset: str = "default") -> Study:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    r_anat, r_find, r_rep, r_noise = [np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), 0xC4E5]).spawn(4)]
    plan, want = draw_plan(r_find)
    anatomy = build_chest_anatomy(r_anat, plan)
    findings = place_findings(r_find, anatomy, plan, want)
    grid = make_grid(anatomy.z_range, preset)
    img, structures = rasterize(anatomy, grid)
    inst = instance_map(findings, grid, structures)
    image, noise_sd = render(img, grid.spacing, r_noise)
    text, sentences, region_reports = write_chest_report(r_rep, findings, grid.spacing[2])

    affine = affine_for(grid)
    vox_ml = float(np.prod(grid.spacing)) / 1000.0
    linked = {}
    for s in sentences:
        if s["kind"] == "finding" and not s["restates"]:
            for fid in s["lesion_ids"]:
                linked[fid] = s
    truth_findings = []
    for f in findings:
        idx = np.nonzero(inst == f.id)
        cv = [float(np.mean(a)) for a in idx] if idx[0].size else None
        box = [[int(a.min()) for a in idx], [int(a.max()) for a in idx]] if idx[0].size else None
        s = linked.get(f.id)
        truth_findings.append({
            "id": f.id,
            "kind": f.kind,
            "region": f.region,
            "structure": f.structure,
            "side": f.side,
            "location": f.location,
            "size_mm": [float(v) for v in f.size_mm],
            "severity": f.severity,
            "attributes": dict(f.attributes),
            "n_voxels": int(idx[0].size),
            "volume_ml": _r(idx[0].size * vox_ml, 3),
            "hu_image": _r(float(image[idx].mean()), 1) if idx[0].size else None,
            "centroid_vox": [_r(v, 2) for v in cv] if cv else None,
            "centroid_mm": [_r(v, 2) for v in (affine @ np.append(cv, 1.0))[:3]] if cv else None,
            "box_vox": box,
            "sentence_index": s["index"] if s else None,
            "span": s["span"] if s else None,
        })
    sid = study_id_for(seed, "chest")
    truth = {
        "study_id": sid,
        "seed": int(seed),
        "preset": preset,
        "region": "chest",
        "shape": [int(v) for v in image.shape],
        "spacing": [float(v) for v in grid.spacing],
        "affine": [[float(v) for v in row] for row in affine],
        "organ_labels": dict(ANATOMY_STRUCTURES),
        "region_labels": dict(REGION_IDS),
        "noise_sd": _r(noise_sd, 2),
        "findings": truth_findings,
        "lesions": [],  # abdominal lesion units; chest findings are in "findings"
        "sentences": sentences,
        "region_reports": region_reports,
        "anatomy": {"origin_lps": [float(v) for v in grid.origin], "landmarks": anatomy.landmarks, "organ_hu": {k: _r(v, 1) for k, v in anatomy.organ_hu.items()}},
    }
    return Study(sid, int(seed), preset, image, structures, inst, tuple(float(v) for v in grid.spacing), affine, text, truth,
                 regions=region_map(structures), body="chest")
