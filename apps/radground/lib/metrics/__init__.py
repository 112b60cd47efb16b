"""Metrics shared by every model: voxel (Dice, HD95), lesion (LR, LLS of 000 eq. 9) and boxes."""
from lib.metrics.lesion import aggregate, lesion_localisation_score, lesion_recall, match_lesions, per_organ_lesion_scores
from lib.metrics.segmentation import dice, hd95

__all__ = ["dice", "hd95", "match_lesions", "lesion_recall", "lesion_localisation_score", "aggregate", "per_organ_lesion_scores"]
