"""A synthetic 32^3 study for the GLeVE model tests: a liver with one dark lesion, a kidney with a cyst."""
from __future__ import annotations

import numpy as np
import torch

from lib.anatomy.labels import ABDOMEN_ORGANS
from lib.anatomy.prior import soft_organ_maps

X = 32
REPORT = (
    "Liver: 6 mm hypodense lesion in segment VII of the liver. "
    "Kidneys: 5 mm cyst in the lower pole of the left kidney."
)


def make_scene(seed: int = 1):
    """image (1, 1, X, X, X), soft organ maps (K_o, X, X, X), HU (X, X, X), per-lesion masks (2, X, X, X)."""
    g = torch.Generator().manual_seed(seed)
    lab = np.zeros((X, X, X), np.uint8)
    lab[4:20, 4:28, 4:28] = ABDOMEN_ORGANS["liver"]
    lab[22:30, 8:20, 8:20] = ABDOMEN_ORGANS["kidney_left"]
    hu = torch.full((X, X, X), -100.0)
    hu[torch.from_numpy(lab == ABDOMEN_ORGANS["liver"])] = 60.0
    hu[torch.from_numpy(lab == ABDOMEN_ORGANS["kidney_left"])] = 150.0
    zz, yy, xx = torch.meshgrid(*[torch.arange(X)] * 3, indexing="ij")
    liver_lesion = ((zz - 12) ** 2 + (yy - 17) ** 2 + (xx - 12) ** 2) <= 9
    kidney_lesion = ((zz - 26) ** 2 + (yy - 14) ** 2 + (xx - 14) ** 2) <= 4
    hu[liver_lesion] = 10.0
    hu[kidney_lesion] = 5.0
    hu = hu + 5.0 * torch.randn(X, X, X, generator=g)
    image = ((hu.clamp(-200, 300) - 50.0) / 100.0)[None, None]
    organs = torch.from_numpy(soft_organ_maps(lab, ABDOMEN_ORGANS, spacing=(1, 1, 1), sigma_mm=1.0))
    masks = torch.stack([liver_lesion, kidney_lesion]).float()
    return image, organs, hu, masks
