"""Writes a task's label map on the input image's grid, with per-result segment names.

MONAI Label's Slicer module reads ``params["label_names"]`` (name -> id) to name segments, and
asks for ``result_extension=.nrrd`` / ``result_dtype=uint8``; both are honoured here. The file is
written to a temporary name and renamed, so a reader never sees a half-written label.
"""
from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import numpy as np
import torch
from monailabel.transform.writer import write_itk

logger = logging.getLogger(__name__)

_ALLOWED_EXT = (".nii.gz", ".nii", ".nrrd", ".seg.nrrd")
_ALLOWED_DTYPES = ("uint8", "uint16", "int16", "int32")


def result_extension(data: dict[str, Any]) -> str:
    """The label file's extension: the request's ``result_extension`` if allowed, else the image's."""
    ext = str(data.get("result_extension") or "").lower()
    if ext in _ALLOWED_EXT:
        return ext
    path = str(data.get("source_path") or data.get("image_path") or "")
    return ".nrrd" if path.endswith(".nrrd") else ".nii.gz"


def write_label(label: np.ndarray, affine: np.ndarray, ext: str, dtype: str = "uint8") -> str:
    """Write ``label`` (array order of the input image) to a new temp file and return its path."""
    dtype = dtype if dtype in _ALLOWED_DTYPES else "uint8"
    if int(label.max(initial=0)) > np.iinfo(dtype).max:
        dtype = "uint16"
    fd, final = tempfile.mkstemp(suffix=ext, prefix="radground_label_")
    os.close(fd)
    partial = final + ".partial" + ext
    try:
        write_itk(label.astype(dtype), partial, affine, dtype, compress=True)
        os.replace(partial, final)
    except BaseException:
        for p in (partial, final):
            if os.path.exists(p):
                os.remove(p)
        raise
    return final


class LabelWriter:
    """Callable writer for BasicInferTask: returns (label file, result json)."""

    def __init__(self, label_key: str = "pred", image_key: str = "image", json_key: str = "result"):
        self.label_key = label_key
        self.image_key = image_key
        self.json_key = json_key

    def __call__(self, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        pred = data[self.label_key]
        pred = pred.detach().cpu().numpy() if torch.is_tensor(pred) else np.asarray(pred)
        pred = np.squeeze(pred)
        shape = data.get("source_shape")
        if shape is not None and tuple(pred.shape) != tuple(shape):
            raise RuntimeError(f"label shape {pred.shape} does not match the input image {shape}")
        affine = data.get("source_affine")
        ext = result_extension(data)
        path = write_label(pred, affine, ext, str(data.get("result_dtype") or "uint8"))
        result = dict(data.get(self.json_key) or {})
        return path, result
