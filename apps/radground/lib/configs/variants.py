"""Model size variants: every task has a ``tiny`` (CPU, minutes) and a ``paper`` (GPU) entry.

Chosen per app with ``--conf variant tiny|paper`` or per task with ``--conf <task>_variant ...``.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

#: The default weights shipped with the app (trained by the scripts in scripts/ on synthetic studies).
BUNDLED_MODEL_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "model")


def bundled_checkpoint(filename: str) -> str:
    """Path of a shipped default checkpoint (``model/pretrained_<filename>``)."""
    return os.path.join(BUNDLED_MODEL_DIR, f"pretrained_{filename}")


def select_variant(task: str, variants: Mapping[str, dict[str, Any]], conf: Mapping[str, str] | None) -> tuple[str, dict[str, Any]]:
    """Return (variant name, settings) for ``task`` from the app's ``--conf`` strings."""
    conf = conf or {}
    name = conf.get(f"{task}_variant") or conf.get("variant") or "tiny"
    if name not in variants:
        raise ValueError(f"{task}: unknown variant {name!r}; choose one of {sorted(variants)}")
    return name, dict(variants[name])
