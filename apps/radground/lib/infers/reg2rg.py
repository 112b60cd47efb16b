"""``reg2rg``: a CT (+ optional region subset) -> a draft report written region by region (004, Reg2RG).

The anatomy task gives the structure map (cached per image), merged into the 10 chest regions;
each region present (or each one asked for in ``params["regions"]``) becomes a ``<region_i>`` of
the prompt, with the whole volume as ``<image>``. The model writes, per region, the RRA prefix
"The region i is <area>:" and the region's report; the prefix is read back and stripped.

Answer (``params``):

* ``regions``: one entry per region given, in prompt order: ``index``, ``region`` (the region
  given), ``label`` (its id in the label map), ``text`` (the report, prefix stripped),
  ``recognised_area`` (the area the model named, or null), ``matched`` (named == given: the
  report is grounded in that region; when false, treat the text as unreliable, 004 §4.5.3);
* ``report``: the region texts joined; ``missing_regions``: regions asked for but absent from the
  image (too few voxels in the anatomy map);
* the label map: the regions described, ids as ``lib.anatomy.labels.REGION_IDS``, named
  ``label_names`` {"lung": 6, ...}, so Slicer/OHIF show which mask each report describes.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np
from monai.transforms import EnsureChannelFirstd, LoadImaged, Orientationd
from monailabel.interfaces.tasks.infer_v2 import InferType

from lib.anatomy.labels import REGION_IDS, region_map
from lib.data.region_reports import ORIENTATION, REGION_NAMES, fill_region_holes, region_inputs
from lib.errors import InvalidImageError, InvalidParamsError
from lib.infers.base import RadgroundInferTask
from lib.infers.params import bounded_int
from lib.networks.reg2rg.decode import write_region_reports
from lib.transforms.ct import CheckCTd, RememberGeometryd
from lib.transforms.anatomy import AnatomyLabeld

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 600


def requested_regions(value: Any) -> list[str]:
    """``params["regions"]`` (list or comma string of region names) -> canonical-order subset; None/empty = all."""
    if value is None or value == "" or value == []:
        return list(REGION_NAMES)
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise InvalidParamsError("params.regions must be a list of region names")
    names = {" ".join(v.lower().split()) for v in items if v.strip()}
    unknown = sorted(names - set(REGION_NAMES))
    if unknown:
        raise InvalidParamsError(f"unknown region(s) {unknown}; choose from {list(REGION_NAMES)}")
    if not names:
        raise InvalidParamsError("params.regions names no region")
    return [r for r in REGION_NAMES if r in names]


class StructuresToRegionsd:
    """Anatomy structure map -> chest region map: ``region_map`` (to be oriented) and ``region_map_input_grid``."""

    def __init__(self, key: str = "anatomy_label", fill_holes: bool = False):
        self.key, self.fill_holes = key, fill_holes

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        lab = d.pop(self.key)
        regions = region_map(np.asarray(lab)[0].astype(np.int64))
        if self.fill_holes:  # on the input grid: its axial axis is the one closest to the patient's S-I
            affine = np.asarray(getattr(lab, "affine", np.eye(4)))
            regions = fill_region_holes(regions, axial_axis=int(np.argmax(np.abs(affine[2, :3]))))
        d["region_map_input_grid"] = regions
        out = lab.clone() if hasattr(lab, "clone") else lab
        out[0] = out.new_tensor(regions) if hasattr(out, "new_tensor") else regions
        d["region_map"] = out
        return d


def _saved_config(path: str) -> dict[str, Any]:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return dict(ckpt.get("config") or {}) if isinstance(ckpt, dict) else {}


class Reg2RGInfer(RadgroundInferTask):
    def __init__(self, path, network, anatomy_task: Callable, **kw):
        super().__init__(
            path=path,
            network=network,
            type=InferType.SEGMENTATION,
            labels=dict(REGION_IDS),
            dimension=3,
            description="Reg2RG: a draft report region by region, each section tied to its region mask (recognised area checked)",
            config={"regions": "", "max_new_tokens": DEFAULT_MAX_NEW_TOKENS},
            **kw,
        )
        self.anatomy_task = anatomy_task

    def pre_transforms(self, data=None) -> Sequence[Callable]:
        keys = ["image", "anatomy_label"]
        return [
            AnatomyLabeld(self.anatomy_task, task="reg2rg"),
            LoadImaged(keys=keys, image_only=True),
            EnsureChannelFirstd(keys=keys),
            CheckCTd(keys="image"),
            RememberGeometryd(keys="image"),
            StructuresToRegionsd(fill_holes=self.fill_region_holes()),
            Orientationd(keys=["image", "region_map"], **ORIENTATION),
        ]

    def inverse_transforms(self, data=None):
        return None  # the label map is made from the region map kept on the input grid

    def saved_preparation(self, key: str) -> Any:
        """``key`` of the checkpoint's saved config (None if absent): how its inputs were prepared in
        training. One read per checkpoint file, shared by every such key."""
        saved = self.checkpoint_object("saved_config", _saved_config, required=False)
        return (saved or {}).get(key)

    def fill_region_holes(self) -> bool:
        """Whether the checkpoint was trained on hole-filled region masks (its saved config), else the network's."""
        saved = self.saved_preparation("fill_region_holes")
        return bool(getattr(getattr(self.network, "config", None), "fill_region_holes", False) if saved is None else saved)

    def texture_outside_hu(self, cfg) -> float:
        """The crop background the checkpoint was trained with (its saved config), else the network's:
        the input must be prepared as in training, whatever the network was built with."""
        saved = self.saved_preparation("texture_outside_hu")
        return float(cfg.texture_outside_hu if saved is None else saved)

    def run_inferer(self, data: dict[str, Any], convert_to_batch=True, device="cuda"):
        wanted = requested_regions(data.get("regions"))
        max_new = bounded_int(data.get("max_new_tokens"), "max_new_tokens", 1, 4096, DEFAULT_MAX_NEW_TOKENS)
        network = self._get_network(device, data)
        cfg = network.config
        image = np.asarray(data["image"][0], dtype=np.float32)
        regions = np.asarray(data["region_map"][0]).astype(np.int64)
        inputs = region_inputs(image, regions, cfg.image_size, cfg.mask_size, regions=wanted, outside_hu=self.texture_outside_hu(cfg))
        missing = [r for r in wanted if r not in inputs.names]
        if cfg.uses_local and not inputs.names:
            raise InvalidImageError(f"none of the regions {wanted} was found in this image by the anatomy task")
        given = inputs.names if cfg.uses_local else list(wanted)
        network.eval()
        records, text = write_region_reports(network, inputs, given, max_new)
        data["reg2rg"] = {"records": records, "missing": missing, "raw": text}
        data[self.output_label_key] = data["region_map_input_grid"]
        return data

    def post_transforms(self, data=None) -> Sequence[Callable]:
        return [RegionReportsd(self.output_label_key, self.output_json_key)]


class RegionReportsd:
    """Region map on the input grid (only the regions described) + the per-region JSON of the answer."""

    def __init__(self, label_key: str = "pred", json_key: str = "result"):
        self.label_key, self.json_key = label_key, json_key

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        d = dict(data)
        out = d.pop("reg2rg")
        regions = np.asarray(d[self.label_key])
        described = {r["region"] for r in out["records"]}
        keep = np.zeros(max(REGION_IDS.values()) + 1, dtype=np.uint8)
        for name in described:
            keep[REGION_IDS[name]] = REGION_IDS[name]
        d[self.label_key] = keep[regions]
        records = [dict(r, label=REGION_IDS[r["region"]]) for r in out["records"]]
        result = dict(d.get(self.json_key) or {})
        result.update(
            regions=records,
            report=" ".join(r["text"] for r in records if r["text"]),
            missing_regions=out["missing"],
            n_matched=sum(r["matched"] for r in records),
            result_label_names={name: REGION_IDS[name] for name in REGION_NAMES if name in described},
            anatomy=d.get("anatomy"),
        )
        d[self.json_key] = result
        return d
