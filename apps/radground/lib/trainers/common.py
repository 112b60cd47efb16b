"""Small helpers every plain-torch train task shares (GLeVE, MedGrounder, ...): the stats they
write must be strict JSON, and request values arrive as strings from MONAI Label's REST API."""
from __future__ import annotations

import datetime
import math
import time
from typing import Any, Mapping

import numpy as np
import torch
from monailabel.interfaces.tasks.train import TrainTask


def truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(v)


def elapsed(start: float) -> str:
    return str(datetime.timedelta(seconds=int(time.time() - start)))


def jsonable(x: Any) -> Any:
    """NaN/inf -> None (strict JSON), tensors and numpy scalars -> Python numbers."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if torch.is_tensor(x):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def save_checkpoint_atomic(ckpt: Mapping[str, Any], path: str) -> None:
    """torch.save to a temp file beside ``path``, then rename: an infer task reloading the
    checkpoint (MONAI Label watches its file time) never reads half a file."""
    import os
    import tempfile

    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    os.close(fd)
    try:
        torch.save(dict(ckpt), tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_stats(stats: Mapping[str, Any], path: str) -> None:
    """``train_stats.json`` (strict JSON, written atomically: MONAI Label's /train status reads it)."""
    import json
    import os
    import tempfile

    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".train_stats.", suffix=".json", dir=d)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(jsonable(stats), f, indent=2, default=str)
    os.replace(tmp, path)


def read_stats(path: str) -> dict[str, Any]:
    """The stats a train task wrote, or {} (missing or unreadable)."""
    import json
    import logging
    import os

    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            logging.getLogger(__name__).warning("unreadable %s", path)
    return {}


class PlainTrainTask(TrainTask):
    """MONAI Label TrainTask of the plain-torch trainers: the request defaults live in
    ``self._config`` and the run's figures in ``self.stats_path`` (what ``/train`` and ``/info`` show)."""

    _config: dict[str, Any]
    stats_path: str

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def stats(self) -> dict[str, Any]:
        return read_stats(self.stats_path)
