"""TaskConfig for ``medgrounder_cxr`` (003 on its own modality): report sentences -> boxes on a frontal chest radiograph.

The 2D twin of ``medgrounder`` (:mod:`lib.configs.medgrounder`): same network, text encoder and
post-processing, ``spatial_dims=2`` and one intensity channel. It infers on 2D radiographs (the
app's guard lets 2D images through for this task only) and trains on the datastore's chest CT
studies seen as digitally reconstructed radiographs (:mod:`lib.trainers.medgrounder_cxr`), both
stages. Sizes: ``tiny`` 96 px (4 mm for a 384 mm chest, 12 x 12 visual tokens) and ``paper``
640 px (the paper's resize-and-pad), chosen with ``--conf medgrounder_cxr_variant`` or ``--conf variant``.
"""
from __future__ import annotations

from typing import Any

from lib.configs.medgrounder import Medgrounder
from lib.infers.medgrounder_cxr import MedGrounderCXRInfer

VARIANTS: dict[str, dict[str, Any]] = {
    "tiny": {"config": "tiny", "image_size": 96, "iso_mm": 2.0},
    "paper": {"config": "paper", "image_size": 640, "iso_mm": 0.6},
}


class MedgrounderCxr(Medgrounder):
    variants = VARIANTS
    spatial_dims, in_channels = 2, 1
    infer_class = MedGrounderCXRInfer

    def train_class(self):
        from lib.trainers.medgrounder_cxr import MedGrounderCXRTrain

        return MedGrounderCXRTrain
