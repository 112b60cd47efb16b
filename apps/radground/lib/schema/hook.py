"""The one place every infer task's answer gets its schema'd form (``result["grounding"]``).

Called by :class:`lib.infers.base.RadgroundInferTask` after the answer is complete (label names
and model version included). The task's own keys are left untouched. A failure here is a bug in an
adapter, not in the request: it is logged with its trace and reported as ``grounding_error``, and the
answer still goes out, since Slicer reads the task's own keys.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from lib.schema.adapters import to_grounding
from lib.schema.geometry import geometry_of_label_file

logger = logging.getLogger(__name__)

GROUNDING_KEY = "grounding"


def attach_grounding(result: dict[str, Any], label_file: Optional[str], fmt: Optional[str] = None) -> dict[str, Any]:
    """Add ``result["grounding"]`` (a JSON dict of :class:`GroundingResult`) in place; returns ``result``."""
    try:
        geometry = geometry_of_label_file(label_file) if isinstance(label_file, str) else None
        result[GROUNDING_KEY] = to_grounding(result, geometry, fmt).model_dump(mode="json")
        result.pop("grounding_error", None)
    except Exception as e:  # noqa: BLE001 - see the module docstring
        logger.exception("could not build the grounding schema of this answer")
        result[GROUNDING_KEY] = None
        result["grounding_error"] = f"{type(e).__name__}: {e}"
    return result
