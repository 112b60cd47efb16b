"""Helpers shared by the scripts: the app's own infer tasks, built as the server builds them."""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
if APP_DIR not in sys.path:
    sys.path.insert(0, APP_DIR)


def infer_task(name: str, conf: dict):
    """The app's infer task ``name`` with its bundled (or configured) weights, without a server."""
    from main import discover_configs

    path = discover_configs()[name]
    module_name, cls_name = path.rsplit(".", 1)
    cfg = getattr(__import__(module_name, fromlist=[cls_name]), cls_name)()
    cfg.init(name, conf.get("model_dir") or os.path.join(APP_DIR, "model"), conf, None)
    task = cfg.infer()
    return task[name] if isinstance(task, dict) else task
