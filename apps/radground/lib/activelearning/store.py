"""Scores in MONAI Label's datastore info, read and written so that processes do not lose them.

MONAI Label runs ``/scoring`` in a background process with its own copy of the datastore; it
writes ``datastore_v2.json`` and the server learns of it only through its file watcher, which
``MONAI_LABEL_DATASTORE_AUTO_RELOAD=false`` switches off. So every read and write here first
re-reads that file when it changed on disk (the local datastore's own reload; one ``stat`` when
nothing changed), and the app does the same before each request (``RadGroundApp.datastore``).

Per image and score ``<key>`` the info holds ``<key>`` (a float, what strategies rank by),
``<key>_detail`` (per-lesion terms, for the radiologist and for debugging) and
``<key>_version`` (model version + report hash + settings: unchanged -> the score is not recomputed,
as MONAI Label's epistemic scoring does with ``epistemic_ts``).
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from typing import Any, Optional

from monailabel.interfaces.datastore import Datastore, DefaultLabelTag

logger = logging.getLogger(__name__)

FINAL = DefaultLabelTag.FINAL.value


def sync_from_disk(datastore: Datastore) -> None:
    """Re-read the local datastore's JSON when another process changed it (no-op for others)."""
    reload = getattr(datastore, "_init_from_datastore_file", None)
    path = getattr(datastore, "_datastore_config_path", None)
    if not callable(reload) or not path:
        return
    try:  # parse the JSON again only when the file changed (this runs on every request)
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        return
    if getattr(datastore, "_radground_disk_stamp", None) == stamp:
        return
    try:
        reload()
        datastore._radground_disk_stamp = stamp
    except Exception as e:  # a half-written file from another process: keep the in-memory copy
        logger.warning("datastore reload failed: %s", e)


def write_scores(datastore: Datastore, image_id: str, info: dict[str, Any]) -> None:
    sync_from_disk(datastore)
    datastore.update_image_info(image_id, info)


def stored_score(info: dict[str, Any], key: str) -> Optional[float]:
    v = info.get(key)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v)):
        return float(v)
    return None


def unlabelled_images(datastore: Datastore) -> list[str]:
    """Images without a ``final`` label, sorted (fresh from disk)."""
    sync_from_disk(datastore)
    return sorted(datastore.get_unlabeled_images(FINAL))


def score_version(model_version: str, report: str, settings: str = "") -> str:
    digest = hashlib.sha1(report.encode("utf-8")).hexdigest()[:10]
    return f"{model_version}:{digest}:{settings}"
