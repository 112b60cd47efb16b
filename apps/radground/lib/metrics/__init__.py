"""Metrics shared by every model: voxel (Dice, HD95), lesion (LR, LLS of 000 eq. 9) and boxes.

``lib.metrics.evaluation`` (per-organ tables over a study set) builds on these and is imported
from its own module.
"""
from lib.metrics.boxes import (
    box_voxel_to_mm,
    box_voxel_to_world,
    box_world_to_voxel,
    giou_loss,
    giou_matrix,
    instance_boxes,
    iou_matrix,
    mask_to_box,
    paired_giou,
    paired_iou,
)
from lib.metrics.lesion import (
    D0_MM,
    DICE_MATCH_THRESHOLD,
    LesionMatch,
    LesionScore,
    aggregate,
    aggregate_per_organ,
    lesion_instances,
    lesion_localisation_score,
    lesion_recall,
    match_lesions,
    per_organ_lesion_metrics,
    per_organ_lesion_scores,
)
from lib.metrics.segmentation import dice, hd95, image_diagonal_mm, segmentation_metrics

__all__ = [
    "dice",
    "hd95",
    "segmentation_metrics",
    "image_diagonal_mm",
    "DICE_MATCH_THRESHOLD",
    "D0_MM",
    "LesionMatch",
    "LesionScore",
    "lesion_instances",
    "match_lesions",
    "lesion_recall",
    "lesion_localisation_score",
    "aggregate",
    "aggregate_per_organ",
    "per_organ_lesion_metrics",
    "per_organ_lesion_scores",
    "mask_to_box",
    "instance_boxes",
    "box_voxel_to_world",
    "box_voxel_to_mm",
    "box_world_to_voxel",
    "iou_matrix",
    "giou_matrix",
    "paired_iou",
    "paired_giou",
    "giou_loss",
]
