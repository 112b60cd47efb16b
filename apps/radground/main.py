"""radground: the MONAI Label app that grounds radiology reports in 3D CT.

Every ``TaskConfig`` in ``lib/configs`` is a task (infer + train); ``--conf models all|a,b`` picks
them, as MONAI Label's radiology sample app does. On top of MONAI Label this app adds a request
guard: unknown models and images, unreadable or non-CT volumes and bad report text are answered
with a clear 4xx; nothing reaches the client as a stack trace.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import os
import pkgutil
import tempfile
from typing import Any, Dict

from fastapi import HTTPException

import lib.configs
import monailabel
from lib.activelearning import settings as al_settings
from lib.activelearning.store import sync_from_disk
from lib.activelearning.trigger import RetrainTrigger
from lib.data.atomic_datastore import atomic_local_datastore
from lib.data.validation import DEFAULT_MAX_VOXELS, inspect_volume
from lib.errors import RadgroundError, UnknownImageError, UnknownModelError
from lib.infers.base import model_version
from lib.serving.dicom_store import RESULT_KEY as DICOM_RESULT_KEY
from lib.serving.dicom_store import check_store_request, store_answer, wants_store
from lib.serving.dicomweb import radground_datastore
from lib.serving.reports import DEFAULT_MAX_REPORT_CHARS, advertise_report_option, datastore_report, requested_report, validated_report
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.config import TaskConfig
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

logger = logging.getLogger(__name__)

#: Tasks whose answer depends on the report: they refuse to run without one.
REPORT_TASKS_ATTR = "needs_report"


def discover_configs() -> Dict[str, str]:
    """Task name (module name) -> class path of the concrete TaskConfig defined in each lib/configs module.

    MONAI Label's ``get_class_names`` only sees direct subclasses of TaskConfig; the tasks here share
    intermediate bases (``CTSegmentationConfig``), so any concrete subclass counts.
    """
    configs = {}
    for info in pkgutil.iter_modules(lib.configs.__path__):
        module = importlib.import_module(f"lib.configs.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, TaskConfig) and not inspect.isabstract(cls):
                configs[info.name.lower()] = f"{module.__name__}.{cls.__name__}"
    return dict(sorted(configs.items()))


def is_upload(path: str) -> bool:
    """True for a file the /infer endpoint wrote from an upload (``tempfile.NamedTemporaryFile`` in the
    temp dir itself). Any other path is refused: a client must not make the server read its files."""
    real = os.path.realpath(path)
    return os.path.dirname(real) == os.path.realpath(tempfile.gettempdir()) and os.path.basename(real).startswith("tmp")


class RadGroundApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: Dict[str, str]):
        # Trained checkpoints go to --conf model_dir (default: the app's model/, next to the bundled weights).
        self.model_dir = conf.get("model_dir") or os.path.join(app_dir, "model")
        os.makedirs(self.model_dir, exist_ok=True)
        self.max_voxels = int(conf.get("max_voxels", DEFAULT_MAX_VOXELS))
        self.max_report_chars = int(conf.get("max_report_chars", DEFAULT_MAX_REPORT_CHARS))
        # issue 9: train from the server after N new final labels (--conf retrain_after N)
        self.retrain_trigger = RetrainTrigger.from_conf(conf, self.model_dir)
        self._versions: Dict[str, tuple] = {}

        configs = discover_configs()
        wanted = [m.strip() for m in conf.get("models", "all").split(",") if m.strip()]
        unknown = [m for m in wanted if m != "all" and m not in configs]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; available: all, {', '.join(configs)}")

        self.models: Dict[str, TaskConfig] = {}
        for name, path in configs.items():
            if "all" in wanted or name in wanted:
                module_name, cls_name = path.rsplit(".", 1)
                module = __import__(module_name, fromlist=[cls_name])
                task_config: TaskConfig = getattr(module, cls_name)()
                task_config.init(name, self.model_dir, conf, None)
                self.models[name] = task_config
                logger.info(f"+++ Adding model: {name} => {path}")

        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="radground",
            description="Grounds radiology reports in 3D CT: one mask, box and sentence per reported lesion",
            version=monailabel.__version__,
        )

    # ------------------------------------------------------------------ tasks
    def init_infers(self) -> Dict[str, InferTask]:
        infers: Dict[str, InferTask] = {}
        for name, task_config in self.models.items():
            c = task_config.infer()
            infers.update(c if isinstance(c, dict) else {name: c})
        for task in infers.values():
            if getattr(task, REPORT_TASKS_ATTR, False):
                advertise_report_option(task)  # Slicer's options panel shows a 'report' text field (issue 11)
            if hasattr(task, "bind_infers"):
                task.bind_infers(infers)  # ground_all runs the app's other grounding tasks by name
        return infers

    def init_trainers(self) -> Dict[str, TrainTask]:
        trainers: Dict[str, TrainTask] = {}
        if str(self.conf.get("skip_trainers", "false")).lower() == "true":
            return trainers
        for name, task_config in self.models.items():
            t = task_config.trainer()
            if t:
                trainers[name] = t
        return trainers

    def init_strategies(self) -> Dict[str, Strategy]:
        strategies: Dict[str, Strategy] = {"random": Random(), "first": First()}
        for name, task_config in self.models.items():
            s = task_config.strategy()
            if s:
                strategies.update(s if isinstance(s, dict) else {name: s})
        if al_settings.enabled(self.conf) and len(self._disagreement_tasks()) >= 2:
            from lib.activelearning.scoring import DISAGREEMENT
            from lib.activelearning.strategies import HighestScore

            strategies[DISAGREEMENT] = HighestScore(DISAGREEMENT)
        return strategies

    def init_scoring_methods(self) -> Dict[str, ScoringMethod]:
        methods: Dict[str, ScoringMethod] = {}
        for name, task_config in self.models.items():
            s = task_config.scoring_method()
            if s:
                methods.update(s if isinstance(s, dict) else {name: s})
        tasks = self._disagreement_tasks()
        if al_settings.enabled(self.conf) and len(tasks) >= 2:
            from lib.activelearning.scoring import DISAGREEMENT, ModelDisagreementScoring

            methods[DISAGREEMENT] = ModelDisagreementScoring(tasks)
        return methods

    def _disagreement_tasks(self) -> Dict[str, InferTask]:
        """The lesion models ``model_disagreement`` compares (``--conf disagreement_models``) that this app serves."""
        return {m: self._infers[m] for m in al_settings.disagreement_models(self.conf) if m in getattr(self, "_infers", {})}

    # ------------------------------------------------------------------ DICOMweb (issue 11)
    def _download_dcmqi_tools(self):
        """MONAI Label downloads dcmqi from GitHub when the studies are a DICOMweb URL, and the server
        cannot start offline. radground writes DICOM SEG with highdicom (lib/writers/dicom_seg.py),
        so nothing is downloaded here."""
        logger.info("DICOMweb datastore: DICOM SEG is written with highdicom; dcmqi is not downloaded")

    # ------------------------------------------------------------------ datastore (issue 10)
    def init_datastore(self):
        """A local studies folder gets MONAI Label's datastore with atomic label saves
        (lib/data/atomic_datastore.py); remote datastores are built as MONAI Label builds them, and a
        DICOMweb one writes its SEGs with highdicom (lib/serving/dicomweb.py)."""
        if self.studies.startswith(("http://", "https://")):
            return radground_datastore(super().init_datastore())
        return atomic_local_datastore(self.studies)

    # ------------------------------------------------------------------ active learning hooks (issue 9)
    def datastore(self):
        """The datastore, re-read from disk when another process (a background scoring or training
        run) changed it: with auto reload off the server would otherwise overwrite their updates."""
        ds = super().datastore()
        sync_from_disk(ds)
        return ds

    def on_save_label(self, image_id, label_id):
        res = super().on_save_label(image_id, label_id)
        if self.retrain_trigger is None:
            return res
        status = self.retrain_trigger.label_saved(self, image_id, label_id)
        return {**(res or {}), "retrain": status} if status else res

    def info(self):
        """MONAI Label's info plus each model's checkpoint ``version`` (the hash results carry)."""
        meta = super().info()
        for name, entry in (meta.get("models") or {}).items():
            task = self._infers.get(name)
            path = task.get_path() if task is not None and hasattr(task, "get_path") else None
            if path and isinstance(entry, dict):
                entry["version"] = self._model_version(path)
        return meta

    def _model_version(self, path: str) -> str:
        """:func:`model_version`, hashed again only when the file changed."""
        try:
            st = os.stat(path)
        except OSError:
            return model_version(None)
        key = (st.st_mtime_ns, st.st_size)
        cached = self._versions.get(path)
        if not cached or cached[0] != key:
            cached = (key, model_version(path))
            self._versions[path] = cached
        return cached[1]

    # ------------------------------------------------------------------ guard
    def infer(self, request, datastore=None):
        """Validate the request, attach the report, run the task; map failures to clear HTTP errors."""
        try:
            datastore = datastore or self.datastore()
            request = self._checked_request(dict(request), datastore)
            result = super().infer(request, datastore)
            if wants_store(request):  # params.store_dicom: SEG + SR into the PACS (issue 11)
                result["params"][DICOM_RESULT_KEY] = store_answer(datastore, request["image"], result)
            return result
        except HTTPException:
            raise
        except RadgroundError as e:
            logger.warning(f"infer rejected ({e.status_code}): {e.message}")
            raise HTTPException(status_code=e.status_code, detail=e.message) from e
        except MONAILabelException as e:
            status = 400 if e.error == MONAILabelError.INVALID_INPUT else 500
            logger.warning(f"infer failed: {e.msg}")
            raise HTTPException(status_code=status, detail=e.msg) from e
        except Exception as e:
            logger.exception("infer failed")
            raise HTTPException(status_code=500, detail=f"inference failed ({type(e).__name__}); see the server log") from e

    def _checked_request(self, request: Dict[str, Any], datastore) -> Dict[str, Any]:
        model = request.get("model")
        if model not in self._infers:
            raise UnknownModelError(f"unknown model {model!r}; available: {', '.join(sorted(self._infers))}")

        image = request.get("image")
        if not isinstance(image, str) or not image:
            raise UnknownImageError("no image given")
        if os.path.isabs(image):
            if not is_upload(image):
                raise UnknownImageError("unknown image id")
            path = image
        else:
            path = datastore.get_image_uri(image)
            if not path:
                raise UnknownImageError(f"unknown image id {image!r}")
        inspect_volume(path, max_voxels=self.max_voxels, dims=int(getattr(self._infers[model], "image_dims", 3)))  # 2: a radiograph task

        check_store_request(request, datastore, image_is_upload=os.path.isabs(image))
        task = self._infers[model]
        text = requested_report(request, task)
        if text is None and not os.path.isabs(image):
            text = datastore_report(datastore, image)
        if text is not None or getattr(task, REPORT_TASKS_ATTR, False):
            parsed = validated_report(text, max_chars=self.max_report_chars)
            request["report"] = parsed.text
            request["parsed_report"] = parsed.model_dump()
        return request
