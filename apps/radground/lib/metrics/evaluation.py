"""One evaluation routine for every lesion model: per-organ Dice, HD95, LR and LLS over a study set.

GLeVE's Table 1 reports these four figures split by organ (kidney / liver / pancreas); every model
here is scored by this same code so their tables can stand side by side.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from lib.anatomy.labels import ABDOMEN_ORGANS, organ_group
from lib.metrics.lesion import LesionScore, aggregate, lesion_groups, per_organ_lesion_scores
from lib.metrics.segmentation import dice, hd95

ORGAN_GROUPS = ("kidney", "liver", "pancreas")


@dataclass
class StudyResult:
    study_id: str
    lesion_scores: dict[str, LesionScore]
    dice: dict[str, float] = field(default_factory=dict)
    hd95: dict[str, float] = field(default_factory=dict)


def evaluate_study(
    study_id: str,
    pred: np.ndarray,
    gt_instances: np.ndarray,
    organ_map: np.ndarray,
    spacing: Sequence[float],
    gt_organ: Optional[Mapping[int, str]] = None,
) -> StudyResult:
    """Score one study: LR/LLS per organ group, and Dice/HD95 per group between that group's GT
    lesions and the predicted voxels inside the group's organs or on those lesions."""
    res = StudyResult(study_id, per_organ_lesion_scores(pred, gt_instances, organ_map, spacing, gt_organ=gt_organ))
    pred_b, gt, organ_map = np.asarray(pred) > 0, np.asarray(gt_instances), np.asarray(organ_map)
    groups = lesion_groups(gt, organ_map, gt_organ)
    organ_ids = defaultdict(list)
    for name, oid in ABDOMEN_ORGANS.items():
        organ_ids[organ_group(name)].append(oid)
    for g in ORGAN_GROUPS:
        gt_g = np.isin(gt, [i for i, grp in groups.items() if grp == g])
        if not gt_g.any():
            continue  # a group's Dice/HD95 is averaged over the studies that have lesions there
        pred_g = pred_b & (np.isin(organ_map, organ_ids[g]) | gt_g)
        res.dice[g] = dice(pred_g, gt_g)
        res.hd95[g] = hd95(pred_g, gt_g, spacing)
    return res


def summarise(results: Iterable[StudyResult]) -> dict[str, dict[str, float]]:
    """Per organ group and overall: mean Dice, mean HD95 (mm), LR and LLS (micro, pooled lesions)."""
    results = list(results)
    table: dict[str, dict[str, float]] = {}
    for g in ORGAN_GROUPS + ("all",):
        if g == "all":
            lesion = [LesionScore(n_gt=sum(s.n_gt for s in r.lesion_scores.values()), n_pred=sum(s.n_pred for s in r.lesion_scores.values()),
                                  matches=[m for s in r.lesion_scores.values() for m in s.matches]) for r in results]
            dices = [v for r in results for v in r.dice.values()]
            hds = [v for r in results for v in r.hd95.values()]
        else:
            lesion = [r.lesion_scores[g] for r in results if g in r.lesion_scores]
            dices = [r.dice[g] for r in results if g in r.dice]
            hds = [r.hd95[g] for r in results if g in r.hd95]
        agg = aggregate(lesion) if lesion else {"n_gt": 0, "LR_micro": math.nan, "LLS_micro": math.nan, "false_positives": 0}
        table[g] = {
            "n_lesions": agg["n_gt"],
            "Dice": float(np.mean(dices)) if dices else math.nan,
            "HD95_mm": float(np.mean(hds)) if hds else math.nan,
            "LR": agg["LR_micro"],
            "LLS": agg["LLS_micro"],
            "false_positives": agg.get("false_positives", 0),
        }
    return table


def markdown_table(tables: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Rows = model x organ group, columns = the four figures of 000 Table 1."""
    lines = ["| model | organ | lesions | Dice % | HD95 mm | LR % | LLS % | FP |", "|---|---|---|---|---|---|---|---|"]
    for model, table in tables.items():
        for g, row in table.items():
            f = lambda v, s=100.0: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * s:.1f}"
            lines.append(
                f"| {model} | {g} | {row['n_lesions']} | {f(row['Dice'])} | {f(row['HD95_mm'], 1.0)} | {f(row['LR'])} | {f(row['LLS'])} | {row['false_positives']} |"
            )
    return "\n".join(lines)
