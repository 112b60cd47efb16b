"""Small helpers every plain-torch train task shares (GLeVE, MedGrounder, ...): the stats they
write must be strict JSON, and request values arrive as strings from MONAI Label's REST API."""
from __future__ import annotations

import datetime
import math
import time
from typing import Any, Mapping

import numpy as np
import torch


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
