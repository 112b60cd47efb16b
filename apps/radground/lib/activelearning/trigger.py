"""Start training from the server itself once N new final labels have been saved.

``--conf retrain_after N`` (0 or absent: off) counts the distinct studies whose ``final`` label
was saved (``PUT /datastore/label``, MONAI Label's ``on_save_label`` hook) since the last
triggered training; at N it starts ``--conf retrain_models`` (default ``gleve``; a comma list,
trained one after the other) through MONAI Label's own train machinery - the background train
process ``/train/<model>`` uses - with ``--conf retrain_params`` (JSON: one dict for every model,
or ``{"gleve": {...}}`` per model) as request parameters. The published checkpoint is picked up
by the infer tasks on their next call (MONAI Label reloads a checkpoint whose file time changed),
and the result's ``model.version`` changes with it.

One training at a time: while any training runs or waits (started here or by ``/train``), the
count keeps growing and a watcher thread starts the next training when that one has ended. The
count and the history of triggered runs live in ``<model_dir>/activelearning_state.json``, so a
server restart does not forget labels saved before it.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from lib.activelearning.store import FINAL

logger = logging.getLogger(__name__)

STATE_FILE = "activelearning_state.json"


def training_busy() -> bool:
    """True while a MONAI Label background training runs or waits in its queue."""
    from monailabel.utils.async_tasks.utils import processes, tasks

    return bool(processes("train")) or any(t.get("status") in ("SUBMITTED", "RUNNING") for t in tasks("train"))


class RetrainTrigger:
    def __init__(
        self,
        after: int,
        models: Sequence[str],
        state_path: str,
        params: Optional[Mapping[str, Any]] = None,
        busy: Callable[[], bool] = training_busy,
        poll_s: float = 5.0,
    ):
        if int(after) < 1:
            raise ValueError(f"retrain_after must be >= 1, got {after}")
        self.after = int(after)
        self.models = [m for m in models if m]
        self.state_path = state_path
        self.params = dict(params or {})
        self.busy = busy
        self.poll_s = float(poll_s)
        self._lock = threading.RLock()
        self._watcher: Optional[threading.Thread] = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, str], state_dir: str) -> Optional["RetrainTrigger"]:
        after = int(str(conf.get("retrain_after") or "0"))
        if after <= 0:
            return None
        models = [m.strip() for m in str(conf.get("retrain_models") or "gleve").split(",") if m.strip()]
        try:
            params = json.loads(conf.get("retrain_params") or "{}")
        except ValueError as e:
            raise ValueError(f"retrain_params must be JSON: {e}") from e
        if not isinstance(params, dict):
            raise ValueError("retrain_params must be a JSON object")
        return cls(after, models, os.path.join(state_dir, STATE_FILE), params)

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        try:
            with open(self.state_path, encoding="utf-8") as f:
                s = json.load(f)
        except (OSError, ValueError):
            s = {}
        return {"pending": list(s.get("pending", [])), "runs": list(s.get("runs", []))}

    def _save(self, state: Mapping[str, Any]) -> None:
        d = os.path.dirname(os.path.abspath(self.state_path))
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".al_state.", suffix=".json", dir=d)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
        os.replace(tmp, self.state_path)

    def params_for(self, model: str) -> dict[str, Any]:
        if isinstance(self.params.get(model), dict):
            return dict(self.params[model])
        return {k: v for k, v in self.params.items() if not isinstance(v, dict)}

    # ------------------------------------------------------------------ hook
    def label_saved(self, app, image_id: str, label_id: str) -> dict[str, Any]:
        """``on_save_label``: count a final label; start training at N. Returns the trigger's status."""
        ds = app.datastore()
        if ds.get_label_by_image_id(image_id, FINAL) != label_id:
            return {}
        body = self._body_part(ds, image_id)
        trainers = getattr(app, "_trainers", {}) or {}
        served = [m for m in self.models if m in trainers]
        accepting = [m for m in served if body is None or getattr(trainers[m], "body_parts", None) in (None, ()) or body in trainers[m].body_parts]
        if served and not accepting:  # e.g. a chest label: GLeVE trains on abdominal studies only
            return {"pending": len(self.state()["pending"]), "after": self.after, "models": served, "started": False,
                    "ignored": f"a {body} study: none of {served} trains on it"}
        with self._lock:
            state = self.state()
            if image_id not in state["pending"]:
                state["pending"].append(image_id)
            self._save(state)
            return self._maybe_start(app, state)

    @staticmethod
    def _body_part(ds, image_id: str) -> Optional[str]:
        """'abdomen' / 'chest' from the study's truth (synthetic studies); None when unknown."""
        from lib.data.studies import body_part_of

        try:
            return body_part_of(os.path.dirname(ds.get_image_uri(image_id)), image_id)
        except Exception:  # a remote datastore has no local folder: count the label
            return None

    def _maybe_start(self, app, state: dict[str, Any]) -> dict[str, Any]:
        trainers = getattr(app, "_trainers", {}) or {}
        models = [m for m in self.models if m in trainers]
        status: dict[str, Any] = {"pending": len(state["pending"]), "after": self.after, "models": models, "started": False}
        if len(state["pending"]) < self.after or not models:
            return status
        if self.busy():
            status["waiting"] = "a training is running; the next one starts when it ends"
            self._watch(app)
            return status
        started = []
        for i, model in enumerate(models):
            params = self.params_for(model)
            res = app.async_training(model, params={model: params}, enqueue=i > 0)
            if res:
                started.append({"model": model, "task_id": res.get("id") if isinstance(res, dict) else None, "params": params})
            else:
                logger.warning("retrain trigger: %s did not start: %s", model, res)
        if not started:
            status["waiting"] = "the train task did not start; retrying when the next label is saved"
            return status
        run = {"ts": int(time.time()), "labels": list(state["pending"]), "trainings": started}
        state["runs"].append(run)
        state["pending"] = []
        self._save(state)
        logger.info("retrain trigger: %d new final labels -> started %s", len(run["labels"]), [s["model"] for s in started])
        status.update(started=True, pending=0, run=run)
        return status

    def _watch(self, app) -> None:
        """One daemon thread that waits for the running training to end, then re-checks the count."""
        if self._watcher is not None and self._watcher.is_alive():
            return

        def wait():
            while self.busy():
                time.sleep(self.poll_s)
            with self._lock:
                self._watcher = None
                self._maybe_start(app, self.state())

        self._watcher = threading.Thread(target=wait, name="retrain-trigger", daemon=True)
        self._watcher.start()
