"""MONAI Label active-learning strategies that rank unlabelled studies by a stored score.

``report_uncertainty`` / ``report_inconsistency`` / ``model_disagreement``: the unlabelled study
(no ``final`` label) with the highest score the matching scoring method stored; ties go to the
study served least recently by this strategy, then to the smaller id. Studies never scored (no
report, not yet reached) are not candidates: handing one out would present a guess as a ranking.
``exclude_served_within_s`` (request; default 0 = off) skips studies this strategy handed out
less than that many seconds ago, so two annotators asking at once get different studies.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Optional

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

from lib.activelearning.store import stored_score, unlabelled_images

logger = logging.getLogger(__name__)


class HighestScore(Strategy):
    def __init__(self, key: str, description: Optional[str] = None):
        super().__init__(description or f"Unlabelled study with the highest '{key}' score (run /scoring/{key} first)")
        self.key = key

    def __call__(self, request, datastore: Datastore) -> Optional[dict[str, Any]]:
        request = dict(request or {})
        strategy = request.get("strategy", self.key)
        window = float(request.get("exclude_served_within_s") or 0)
        now = int(time.time())
        ranked = []
        for image_id in unlabelled_images(datastore):
            info = datastore.get_image_info(image_id) or {}
            score = stored_score(info, self.key)
            if score is None:
                continue
            served = int((info.get("strategy") or {}).get(strategy, {}).get("ts", 0) or 0)
            if window > 0 and now - served < window:
                continue
            ranked.append((-score, served, image_id))
        if not ranked:
            logger.info("%s: no unlabelled study has a '%s' score", strategy, self.key)
            return None
        ranked.sort()
        score, _, image_id = ranked[0]
        logger.info("%s: selected %s (%s = %.4f) among %d scored unlabelled studies", strategy, image_id, self.key, -score, len(ranked))
        return {"id": image_id, self.key: -score, "candidates": len(ranked)}
