"""Per-image cache of anatomy results, so grounding tasks don't re-segment the same study.

The key is the image file's content hash plus the anatomy model's version (checkpoint hash): a
changed image or a newly trained model misses the cache by construction, with no bookkeeping.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from typing import Any, Optional


def file_digest(path: str) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ResultCache:
    """Label file + result JSON per (image content, model version); bounded by ``max_entries``."""

    def __init__(self, root: str, max_entries: int = 256):
        self.root = root
        self.max_entries = max_entries
        self._lock = threading.Lock()
        os.makedirs(root, exist_ok=True)

    def key(self, image_path: str, model_version: str) -> str:
        return hashlib.sha1(f"{file_digest(image_path)}:{model_version}".encode()).hexdigest()

    def get(self, key: str, ext: str) -> Optional[tuple[str, dict[str, Any]]]:
        """A fresh temp copy of the cached label (the caller may delete it) and its JSON, or None."""
        label, meta = os.path.join(self.root, key + ext), os.path.join(self.root, key + ".json")
        with self._lock:
            if not (os.path.exists(label) and os.path.exists(meta)):
                return None
            fd, out = tempfile.mkstemp(suffix=ext, prefix="radground_cached_")
            os.close(fd)
            shutil.copyfile(label, out)
            with open(meta) as f:
                result = json.load(f)
            os.utime(meta)  # recently used
        return out, result

    def put(self, key: str, ext: str, label_file: str, result: dict[str, Any]) -> None:
        with self._lock:
            tmp = os.path.join(self.root, f".{key}.partial{ext}")
            shutil.copyfile(label_file, tmp)
            os.replace(tmp, os.path.join(self.root, key + ext))
            tmp_meta = os.path.join(self.root, f".{key}.partial.json")
            with open(tmp_meta, "w") as f:
                json.dump(result, f)
            os.replace(tmp_meta, os.path.join(self.root, key + ".json"))
            self._evict()

    def _evict(self) -> None:
        metas = sorted((os.path.getmtime(os.path.join(self.root, n)), n) for n in os.listdir(self.root) if n.endswith(".json") and not n.startswith("."))
        for _, name in metas[: max(0, len(metas) - self.max_entries)]:
            stem = name[: -len(".json")]
            for n in os.listdir(self.root):
                if n.startswith(stem):
                    os.remove(os.path.join(self.root, n))
