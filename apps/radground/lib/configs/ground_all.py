"""TaskConfig for ``ground_all``: every grounding model of this server on one study, side by side.

No network and no trainer of its own: its infer task runs the app's other grounding tasks (found
in the app's infer registry, :class:`lib.infers.ground_all.GroundAllInfer`) and compares their
findings lesion by lesion. ``--conf ground_all_models a,b`` fixes which tasks run (default: every
grounding task the server loaded).
"""
from __future__ import annotations

from typing import Any

from monailabel.interfaces.config import TaskConfig

from lib.infers.ground_all import GroundAllInfer


class GroundAll(TaskConfig):
    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        wanted = [m.strip() for m in str((conf or {}).get("ground_all_models") or "").split(",") if m.strip()]
        self.members = wanted or None

    def infer(self):
        return {self.name: GroundAllInfer(members=self.members, name=self.name)}

    def trainer(self):
        return None
