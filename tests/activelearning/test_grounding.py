"""TTA bookkeeping of ``ground_study`` with stand-in infer tasks (no network): augmented answers
are mapped back before they are compared, and measurements are taken at the task's spacing."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lib.activelearning.grounding import DEFAULT_VIEWS, ground_study, views
from lib.anatomy.labels import ANATOMY_STRUCTURES
from lib.reports import parse_report

REPORT = "FINDINGS: A 2 cm hypodense lesion in the liver."
SHAPE = (16, 12, 8)


class StandIn:
    """The parts of GleveInfer that ground_study uses; ``answer`` maps the (augmented) image to one lesion's probability."""

    output_label_key = "pred"
    target_spacing = (2.0, 2.0, 3.0)

    def __init__(self, answer):
        self.answer = answer
        self.network = SimpleNamespace(config=SimpleNamespace(organ_names=["liver", "spleen"]))

    def pre_transforms(self, data=None):
        def load(d):
            image = torch.zeros((1, *SHAPE))
            image[0, 2:6, 3:7, 2:5] = 1.0  # a bright blob left of the midline
            organs = torch.full((1, *SHAPE), float(ANATOMY_STRUCTURES["liver"]))
            hu = torch.full((1, *SHAPE), 60.0)
            return {**d, "image": image, "organs": organs, "hu": hu}

        return [load]

    def run_inferer(self, data, convert_to_batch=True, device="cpu"):
        p = self.answer(data["image"][0])
        d = dict(data)
        d["pred"] = torch.stack([torch.full(SHAPE, 0.5), p])
        rec = {"index": 0, "n_candidates": 2, "candidate_entropy": 0.3, "verification_score": 1.0, "reported_volume_ml": 4.2}
        d["gleve_lesions"] = [rec]
        return d


def _run(answer, tta):
    return ground_study(StandIn(answer), "unused.nii.gz", parse_report(REPORT), tta=tta)


def test_an_equivariant_answer_agrees_with_itself_under_every_view():
    (rec,) = _run(lambda img: (img > 0.5).float(), views(4))
    assert rec["grounded"] and rec["tta_disagreement"] == 0.0 and set(rec["tta_dice"]) == {v.name for v in DEFAULT_VIEWS}
    assert rec["measured_volume_ml"] == pytest.approx(4 * 4 * 3 * 12 / 1000)  # 48 voxels of 2x2x3 mm
    assert rec["grounded_count"] == 1 and rec["reported_count"] == 1
    assert rec["organ_mean_hu"] == 60.0 and rec["reported_hu_interval"] is not None


def test_an_answer_fixed_in_space_disagrees_under_mirroring_only():
    """A model that ignores the image answers the same voxels for the mirrored study; mapped back,
    that is the mirror image of its plain answer: Dice 0 for the flip, 1 for the contrast view."""

    def fixed(img):
        p = torch.zeros(SHAPE)
        p[1:4, 1:4, 1:3] = 1.0
        return p

    (rec,) = _run(fixed, views(2))
    assert rec["tta_dice"] == {"flip_lr": 0.0, "contrast_up": 1.0}
    assert rec["tta_disagreement"] == 0.5 and rec["tta_variance"] > 0


def test_no_tta_and_ungrounded():
    (rec,) = _run(lambda img: torch.zeros(SHAPE), ())
    assert "tta_disagreement" not in rec and not rec["grounded"] and rec["measured_volume_ml"] == 0.0 and rec["grounded_count"] == 0
    with pytest.raises(ValueError):
        views(len(DEFAULT_VIEWS) + 1)
