"""Optional MedSAM2 propagation (the paper's frozen propagator), used only when present locally.

MedSAM2 runs through the ``sam2`` package with a local checkpoint; ``sam2`` is not installed in
this project (it requires torchvision, whose PyPI build breaks the CPU torch here; see README), and
nothing is downloaded. :func:`medsam2_status` says whether it could be used and why not; the
config falls back to :mod:`.propagator` (the project's own box-prompted slice segmenter) and logs
the reason. Wiring MedSAM2's video predictor in is left to a machine that has it.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Optional


def medsam2_status(checkpoint: Optional[str]) -> tuple[bool, str]:
    """(usable, reason)."""
    if importlib.util.find_spec("sam2") is None:
        return False, "the sam2 package is not installed"
    if not checkpoint or not os.path.isfile(checkpoint):
        return False, f"no MedSAM2 checkpoint at {checkpoint!r}"
    return False, "sam2 is installed but the MedSAM2 adapter is not implemented in this build"
