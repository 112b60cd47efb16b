"""The anatomy result cache: hit, invalidation by image content and by model version, eviction."""
from __future__ import annotations

import os

from lib.anatomy.cache import ResultCache


def _files(tmp_path):
    img = tmp_path / "img.nii.gz"
    img.write_bytes(b"volume-1")
    lab = tmp_path / "lab.nii.gz"
    lab.write_bytes(b"label")
    return str(img), str(lab)


def test_hit_returns_a_copy_the_caller_may_delete(tmp_path):
    cache = ResultCache(str(tmp_path / "c"))
    img, lab = _files(tmp_path)
    key = cache.key(img, "v1")
    assert cache.get(key, ".nii.gz") is None
    cache.put(key, ".nii.gz", lab, {"label_names": {"liver": 1}})
    out, result = cache.get(key, ".nii.gz")
    assert open(out, "rb").read() == b"label" and result == {"label_names": {"liver": 1}}
    os.remove(out)
    assert cache.get(key, ".nii.gz") is not None


def test_changed_image_or_model_misses(tmp_path):
    cache = ResultCache(str(tmp_path / "c"))
    img, lab = _files(tmp_path)
    k1 = cache.key(img, "v1")
    assert cache.key(img, "v2") != k1
    with open(img, "wb") as f:
        f.write(b"volume-2")
    assert cache.key(img, "v1") != k1


def test_eviction_keeps_the_newest(tmp_path):
    cache = ResultCache(str(tmp_path / "c"), max_entries=2)
    img, lab = _files(tmp_path)
    for v in ("a", "b", "c"):
        cache.put(cache.key(img, v), ".nii.gz", lab, {})
    assert cache.get(cache.key(img, "a"), ".nii.gz") is None
    assert cache.get(cache.key(img, "c"), ".nii.gz") is not None
    assert len([n for n in os.listdir(cache.root) if n.endswith(".json")]) == 2
