"""MedGrounder (003): generalised medical phrase grounding, each sentence -> zero, one or many scored boxes.

``config`` (sizes, eq. 2-4 weights), ``image_encoder`` (MONAI ResNet 2D/3D), ``text`` (frozen token
encoder), ``position`` (sine encoding), ``transformer`` (cross-modal encoder + query decoder),
``model`` (MedGrounder), ``matcher`` (eq. 2, scipy), ``losses`` (eqs. 3-4), ``postprocess``
(threshold + WBF), ``preprocess`` (the shared CT/radiograph input pipeline).
"""
from .config import MedGrounderConfig
from .losses import GroundingLoss
from .matcher import HungarianMatcher
from .model import MedGrounder, boxes_to_corners
from .postprocess import scored_corner_boxes, select_boxes

__all__ = ["MedGrounderConfig", "MedGrounder", "GroundingLoss", "HungarianMatcher", "boxes_to_corners", "scored_corner_boxes", "select_boxes"]
