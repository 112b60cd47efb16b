"""MedGrounder's train task for radiographs (``medgrounder_cxr``): both stages of 003 §3.4 in 2D.

The datastore holds CT studies (with reports, structure maps and finding labels); each is turned
into its frontal digitally reconstructed radiograph (:func:`lib.data.synthetic.radiograph.radiograph_of_ct`)
and every target box of the CT - weak anatomy boxes in stage 1, finding boxes in stage 2 -
is projected onto it, so the sentence targets are the CT task's, seen from the front. Everything
else (sampling, loss, validation, threshold choice, publishing) is :class:`MedGrounderTrain`'s.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from lib.data.synthetic.radiograph import project_boxes, radiograph_of_ct
from lib.networks.medgrounder.preprocess import ModelGrid, prepare_image
from lib.trainers.medgrounder import MedGrounderTrain


class MedGrounderCXRTrain(MedGrounderTrain):
    task_name = "medgrounder_cxr"

    def __init__(self, *args, description: str = "Train MedGrounder on radiographs (DRRs of the CT studies): stage 1 weak anatomy boxes, stage 2 finding boxes", **kw):
        super().__init__(*args, description=description, **kw)

    def model_input(self, image) -> tuple[torch.Tensor, ModelGrid, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        hu = image[0].numpy() if torch.is_tensor(image) else np.asarray(image)[0]
        radiograph, affine, axis = radiograph_of_ct(hu, np.asarray(image.affine, float))
        x, grid = prepare_image(radiograph[None], affine, self.image_size, self.iso_mm, windows=None)
        return x, grid, affine, lambda boxes: project_boxes(boxes, axis)
