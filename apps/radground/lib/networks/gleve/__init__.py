"""GLeVE (000): graph-guided lesion grounding with proposal verification and octree refinement.

Modules, one job each: ``report_graph`` (lesion semantic graph from a parsed report),
``graph_transformer`` (eq. 1), ``query_bank`` (Psi_QB), ``visual_encoder`` (F), ``anatomy_film``
(eq. 2), ``proposals`` (eq. 3 + candidates), ``verification`` (eq. 4), ``octree_refine``
(OcRe, eq. 6), ``losses`` (eqs. 5, 7, 8), ``matching`` (instances -> report lesions) and ``model``.
"""
from lib.networks.gleve.losses import GLeVELoss, LossWeights
from lib.networks.gleve.model import GLeVE, GLeVEConfig, GLeVEOutput, LesionPrediction
from lib.networks.gleve.report_graph import LesionGraph, LesionTarget, build_lesion_graph

__all__ = [
    "GLeVE",
    "GLeVEConfig",
    "GLeVEOutput",
    "GLeVELoss",
    "LesionGraph",
    "LesionPrediction",
    "LesionTarget",
    "LossWeights",
    "build_lesion_graph",
]
