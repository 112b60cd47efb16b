"""Assigning annotated lesion instances to report lesions (Hungarian on organ and volume)."""
from __future__ import annotations

import torch

from lib.networks.gleve.matching import assign_instances, lesion_target_masks
from lib.networks.gleve.report_graph import LesionTarget


def test_assignment_by_organ_and_volume():
    inst = torch.zeros(20, 20, 20, dtype=torch.long)
    inst[1:3, 1:3, 1:3] = 1  # 8 voxels, liver
    inst[4:8, 4:8, 4:8] = 2  # 64 voxels, liver
    inst[12:15, 12:15, 12:15] = 3  # 27 voxels, kidney
    liver = torch.zeros(20, 20, 20, dtype=torch.bool)
    liver[:10] = True
    kidney = ~liver
    targets = [
        LesionTarget(organ="kidney_left", volume_ml=0.030),
        LesionTarget(organ="liver", volume_ml=0.060),
        LesionTarget(organ="liver", volume_ml=0.008),
        LesionTarget(organ="pancreas", volume_ml=0.030),
    ]
    got = assign_instances(inst, targets, [kidney, liver, liver, torch.zeros_like(liver)], voxel_ml=0.001)
    assert got == [3, 2, 1, None]
    masks = lesion_target_masks(inst, got)
    assert masks.shape == (4, 20, 20, 20) and masks[0].sum() == 27 and masks[3].sum() == 0


def test_no_instances():
    inst = torch.zeros(4, 4, 4, dtype=torch.long)
    assert assign_instances(inst, [LesionTarget(organ="liver")], [None], 0.001) == [None]
    assert lesion_target_masks(inst, []).shape == (0, 4, 4, 4)
