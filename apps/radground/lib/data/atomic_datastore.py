"""MONAI Label's local datastore with atomic label saves and index updates (issue 10).

MONAI Label 0.8.5's ``LocalDatastore.save_label`` copies the uploaded label straight onto its final
name and ``_update_datastore_file`` rewrites ``datastore_v2.json`` in place: a server killed midway
(OOM killer, restart, power) leaves a half-written label or a truncated index, and the previous
label is lost. Here both are written to a hidden ``.partial`` file in the same folder and renamed
over the target (``os.replace`` is atomic on one filesystem), so a reader sees the old file or the
new one, never a mix. Leftover ``.partial`` files of a killed save match no datastore extension and
are removed when the datastore starts.
"""
from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Dict

from filelock import FileLock
from monailabel.config import settings
from monailabel.datastore.local import DataModel, LocalDatastore
from monailabel.interfaces.exception import ImageNotFoundException

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"


def _staged(dest: str):
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=PARTIAL_SUFFIX, dir=os.path.dirname(dest) or ".")
    return os.fdopen(fd, "wb"), tmp


def _commit(out, tmp: str, dest: str) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would differ from the labels MONAI Label writes
    os.replace(tmp, dest)


@contextlib.contextmanager
def staged_file(dest: str):
    """A binary file to write ``dest``'s new content into: renamed onto ``dest`` when the block
    ends, removed if it raises (``dest`` keeps its old content)."""
    out, tmp = _staged(dest)
    try:
        yield out
        _commit(out, tmp, dest)
    except BaseException:
        out.close()
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_copy(src: str, dest: str) -> None:
    """Copy ``src`` to ``dest`` so that ``dest`` is never partly written."""
    with staged_file(dest) as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out, 1 << 20)


def atomic_write_text(dest: str, text: str) -> None:
    with staged_file(dest) as out:
        out.write(text.encode("utf-8"))


class AtomicLocalDatastore(LocalDatastore):
    """``LocalDatastore`` whose label saves and index writes cannot be left half done."""

    def __init__(self, datastore_path: str, *args, **kwargs):
        for stale in glob.glob(os.path.join(datastore_path, "**", f".*{PARTIAL_SUFFIX}"), recursive=True):
            logger.warning(f"removing {stale}: left by a save that was interrupted")
            os.remove(stale)
        super().__init__(datastore_path, *args, **kwargs)

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: Dict[str, Any]) -> str:
        """The bookkeeping of ``LocalDatastore.save_label`` (0.8.5); only the copy is staged + renamed."""
        obj = self._datastore.objects.get(image_id)
        if not obj:
            raise ImageNotFoundException(f"Image {image_id} not found")
        _, label_ext = self._to_id(os.path.basename(label_filename))
        label_path = self._datastore.label_path(label_tag)
        name = self._filename(image_id, label_ext)
        logger.info(f"Saving label (atomic): {image_id} => {label_tag} => {name}")
        with FileLock(self._lock_file):
            os.makedirs(label_path, exist_ok=True)
            atomic_copy(label_filename, os.path.join(label_path, name))
            info = dict(label_info or {})
            info["ts"] = int(time.time())
            info["name"] = name
            obj.labels[label_tag] = DataModel(info=info, ext=label_ext)
            self._update_datastore_file(lock=False)
        return image_id

    def _update_datastore_file(self, lock: bool = True) -> None:
        def write() -> None:
            self._ignore_event_config = True
            atomic_write_text(self._datastore_config_path, json.dumps(self._datastore.model_dump(exclude={"base_path"}), indent=2, default=str))
            self._config_ts = os.stat(self._datastore_config_path).st_mtime

        if lock:
            with FileLock(self._lock_file):
                write()
        else:
            write()


def atomic_local_datastore(studies: str) -> AtomicLocalDatastore:
    """The datastore MONAI Label's app would build for a local ``studies`` folder, made atomic."""
    return AtomicLocalDatastore(
        studies,
        extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
        auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
        read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
    )
