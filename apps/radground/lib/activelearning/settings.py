"""The app's active-learning switches (``--conf``).

``active_learning true`` registers the scoring methods and strategies (default false: MONAI Label
runs every scoring method at server start and after each training and ``/activelearning`` call,
and grounding every unlabelled study costs GLeVE passes a deployment must opt into);
``al_tta`` (default 2) augmented views per study for ``report_uncertainty``;
``disagreement_models`` (default ``gleve,lesion_baseline``) the lesion models compared by
``model_disagreement``; ``retrain_after`` / ``retrain_models`` / ``retrain_params``: see
:mod:`lib.activelearning.trigger`.
"""
from __future__ import annotations

from typing import Mapping


def enabled(conf: Mapping[str, str] | None) -> bool:
    return str((conf or {}).get("active_learning", "false")).strip().lower() in ("1", "true", "yes", "on")


def tta_views(conf: Mapping[str, str] | None) -> int:
    return int(str((conf or {}).get("al_tta") or "2"))


def disagreement_models(conf: Mapping[str, str] | None) -> list[str]:
    return [m.strip() for m in str((conf or {}).get("disagreement_models") or "gleve,lesion_baseline").split(",") if m.strip()]
