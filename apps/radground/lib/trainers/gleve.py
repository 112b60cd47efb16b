"""GLeVE training task (000 §2.5): report-grounded lesion segmentation, with or without masks.

    L_total = delta * lambda_seg * L_seg + lambda_weak * L_weak,   delta = 1 iff the study has a mask

Every abdominal study that has a report and an organ map trains: studies with a ``final`` lesion
label (D_m) with both terms, report-only studies with the weak term only (eq. 7). The objective is
the model's own :class:`~lib.networks.gleve.losses.GLeVELoss`; it sets delta from whether
per-lesion target masks are passed, so report-only studies are simply given none.

Why a plain torch loop and not MONAI Label's ``BasicTrainTask`` / ``SupervisedTrainer``: one GLeVE
step needs per-study inputs that do not batch or collate - the report's lesion graph, the soft
organ maps, the HU volume, the voxel spacing and per-lesion masks whose number varies with the
report - and a loss whose form depends on whether the study has a mask. The loop below is batch
size 1 (as in the paper), AdamW with cosine annealing of the learning rate (000 §3.1), validation
with the foundation's lesion metrics and checkpoint selection by LLS (ties: Dice), and the same
``train_stats.json`` / ``publish_path`` contract MONAI Label's ``/train`` status and the app read.

Mask ratio (000 Table 1): ``mask_ratio`` < 1 keeps the masks of only that fraction of the labelled
training studies (chosen by ``seed``); the others train as report-only studies. With
``weak_supervision`` false the studies without a mask are left out instead, so one can compare
"r % masks + reports" with "the same r % masks alone" (``scripts/gleve_weak_supervision.py``).

Pre-processing is the project's (``lib.transforms.ct``: load + CT check, LPS, target spacing, HU
window; the HU volume is kept for the region statistics) and runs once per study: the tensors are
cached in memory for all epochs.

**CPU deviation** (the paper trains on full volumes): each study is cropped to the bounding box of
the organs its report names, plus ``crop_margin_mm``, grown so every side is divisible by the
visual encoder's down-sampling factor (4 for the tiny UNet). Voxels of those organs are never cut,
and a lesion is only ever searched inside its organ's soft map, so the crop removes work, not
signal. ``crop_margin_mm=None`` trains on full volumes (still padded to that factor).
"""
from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose
from monailabel.interfaces.datastore import Datastore

from lib.anatomy.labels import ANATOMY_STRUCTURES
from lib.anatomy.prior import soft_organ_maps
from lib.data.studies import body_part_of, read_report
from lib.metrics.lesion import aggregate, match_lesions
from lib.metrics.segmentation import dice
from lib.networks.gleve.matching import assign_instances, lesion_target_masks
from lib.networks.gleve.model import GLeVE
from lib.networks.gleve.report_graph import LesionGraph, LesionTarget, build_lesion_graph, organ_prior_channels
from lib.reports import parse_report
from lib.trainers.common import PlainTrainTask, elapsed, jsonable, save_checkpoint_atomic, truthy, write_stats
from lib.transforms.ct import load_ct, resample_and_window

logger = logging.getLogger(__name__)

BODY_PART = "abdomen"
ORGANS_TAG = "organs"
LABEL_TAG = "final"
KEY_METRIC = "val_LLS"  # checkpoint selection (000 eq. 9); ties broken by val_mean_dice
HU_PAD = -1000.0  # HU of voxels padded beyond the volume (air)

Box = list[tuple[int, int]]  # per axis (lo, hi), hi exclusive; may reach beyond the volume (padding)


# --------------------------------------------------------------------------- crop helpers

def downsample_factor(config) -> int:
    """Factor every side of the network input must be divisible by (the visual encoder's strides)."""
    vis = dict(getattr(config, "visual", None) or {})
    arch = vis.get("arch", "unet")
    if arch == "unet":
        return int(np.prod([int(s) for s in vis.get("strides", (2, 2))]))
    if arch == "segresnet":
        return 2 ** (len(tuple(vis.get("blocks_down", (1, 2, 2, 4)))) - 1)
    return 4


def init_visual_encoder(model: GLeVE, path: str) -> Optional[str]:
    """Start the visual encoder from a voxel segmenter of the same architecture (every tensor whose
    name and shape match; the output layer differs). The paper's encoder is pre-trained too; here the
    project's own lesion segmenter gives it lesion-aware features before grounding starts."""
    if not os.path.exists(path):
        return None
    ckpt = torch.load(path, map_location="cpu")
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else ckpt
    own = model.visual.state_dict()
    take = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not take:
        logger.warning("GLeVE train: %s shares no tensor with the visual encoder; not used", path)
        return None
    model.visual.load_state_dict(take, strict=False)
    logger.info("GLeVE train: visual encoder initialised from %s (%d/%d tensors)", path, len(take), len(own))
    return f"visual:{path}"


def lesion_organ_ids(targets: Sequence[LesionTarget], organ_names: Sequence[str]) -> list[int]:
    """Label ids (ANATOMY_STRUCTURES) of the organ-map channels named by the report's lesions."""
    ids: set[int] = set()
    for t in targets:
        for ch in organ_prior_channels(t.organ, organ_names):
            name = organ_names[ch]
            if name in ANATOMY_STRUCTURES:
                ids.add(ANATOMY_STRUCTURES[name])
    return sorted(ids)


def study_crop_box(
    organ_map: np.ndarray,
    targets: Sequence[LesionTarget],
    organ_names: Sequence[str],
    spacing: Sequence[float],
    margin_mm: Optional[float],
    divisor: int = 4,
) -> Box:
    """:func:`organ_crop_box` around the organs of a report's lesions. The whole volume when a
    lesion's organ has no channel among ``organ_names`` or is absent from the organ map: GLeVE
    then searches that lesion everywhere, so no crop may cut the volume."""
    lab = np.asarray(organ_map)
    per_lesion = [lesion_organ_ids([t], organ_names) for t in targets]
    if margin_mm is None or not per_lesion or any(not ids or not np.isin(lab, ids).any() for ids in per_lesion):
        return organ_crop_box(lab, [], spacing, None, divisor)
    return organ_crop_box(lab, sorted({i for ids in per_lesion for i in ids}), spacing, margin_mm, divisor)


def _fit(lo: int, hi: int, n: int, divisor: int) -> tuple[int, int]:
    """Grow [lo, hi) to a multiple of ``divisor`` around its centre, then slide it into [0, n) when
    it fits (padding is needed only when it is longer than n)."""
    size = hi - lo
    target = max(divisor, int(math.ceil(size / divisor)) * divisor)
    extra = target - size
    lo, hi = lo - extra // 2, hi + (extra - extra // 2)
    if target <= n:
        if lo < 0:
            lo, hi = 0, target
        elif hi > n:
            lo, hi = n - target, n
    else:  # longer than the volume: centre it (pads both sides)
        lo = -((target - n) // 2)
        hi = lo + target
    return lo, hi


def organ_crop_box(
    organ_map: np.ndarray,
    organ_ids: Sequence[int],
    spacing: Sequence[float],
    margin_mm: Optional[float],
    divisor: int = 4,
) -> Box:
    """Box around the voxels of ``organ_ids`` plus ``margin_mm`` (clipped to the volume), grown so
    every side is divisible by ``divisor``. The whole volume (grown likewise) when ``margin_mm`` is
    None or none of the organs is present. ``hi - lo`` may exceed the volume: see :func:`crop_pad`."""
    lab = np.asarray(organ_map)
    shape = lab.shape[-3:]
    present = np.isin(lab, list(organ_ids)) if (margin_mm is not None and len(organ_ids)) else None
    if present is None or not present.any():
        return [_fit(0, n, n, divisor) for n in shape]
    box = []
    for ax, n in enumerate(shape):
        other = tuple(a for a in range(3) if a != ax)
        idx = np.flatnonzero(present.any(axis=other))
        m = int(math.ceil(float(margin_mm) / float(spacing[ax])))
        lo, hi = max(0, int(idx[0]) - m), min(n, int(idx[-1]) + 1 + m)
        box.append(_fit(lo, hi, n, divisor))
    return box


def crop_pad(array, box: Box, value: float = 0.0):
    """``array[..., lo:hi, lo:hi, lo:hi]`` of the last three axes, padded with ``value`` where the box
    reaches beyond the volume (numpy or torch; the leading axes are kept)."""
    is_t = torch.is_tensor(array)
    a = array if is_t else np.asarray(array)
    shape = tuple(a.shape[-3:])
    src = tuple(slice(max(0, lo), min(n, hi)) for (lo, hi), n in zip(box, shape))
    inner = a[(Ellipsis, *src)]
    if all(lo >= 0 and hi <= n for (lo, hi), n in zip(box, shape)):
        return inner.clone() if is_t else inner.copy()
    out_shape = tuple(a.shape[:-3]) + tuple(hi - lo for lo, hi in box)
    out = torch.full(out_shape, value, dtype=a.dtype, device=a.device) if is_t else np.full(out_shape, value, dtype=a.dtype)
    dst = tuple(slice(s.start - lo, s.stop - lo) for s, (lo, _) in zip(src, box))
    out[(Ellipsis, *dst)] = inner
    return out


def grow_box(box: Box, by: Sequence[int]) -> Box:
    return [(lo - int(b), hi + int(b)) for (lo, hi), b in zip(box, by)]


# --------------------------------------------------------------------------- data

@dataclass
class StudyEntry:
    """One study of the datalist (paths, report, parsed graph), before the volumes are read."""

    image_id: str
    image: str
    organs: str
    label: Optional[str]
    report: str
    graph: LesionGraph

    @property
    def has_mask(self) -> bool:
        return self.label is not None


@dataclass
class StudyTensors:
    """The cached, pre-processed and cropped inputs of one study."""

    image_id: str
    image: torch.Tensor  # (1, 1, X, Y, Z) windowed to [0, 1]
    hu: torch.Tensor  # (X, Y, Z) HU
    organ_maps: torch.Tensor  # (K_o, X, Y, Z) soft maps in config.organ_names order
    graph: LesionGraph
    spacing: tuple[float, float, float]
    box: Box
    target_masks: Optional[torch.Tensor] = None  # (N, X, Y, Z); None: report-only (delta = 0)
    assigned: list[Optional[int]] = field(default_factory=list)

    @property
    def has_mask(self) -> bool:
        return self.target_masks is not None


class GleveTrain(PlainTrainTask):
    """Train GLeVE (000) on the datastore's abdominal studies with a report and an organ map.

    A plain torch loop (MONAI Label's BasicTrainTask / SupervisedTrainer do not fit GLeVE's
    per-study graph inputs; see the module docstring). Request keys (defaults in :meth:`config`):
    ``max_epochs``, ``learning_rate`` (alias ``lr``), ``weight_decay``, ``val_split``,
    ``val_interval``, ``device``, ``pretrained``, ``seed``, ``sigma_mm``, ``crop_margin_mm``,
    ``mask_ratio``, ``weak_supervision``, ``lambda_weak`` (overrides the config's eq. 8 weight),
    ``lambda_weak_response`` / ``lambda_weak_pseudo`` (override the weights of L_con on the response
    map and of the report-consistent pseudo-target, see ``losses``),
    ``weak_per_epoch`` (report-only studies drawn per epoch; default all, see :meth:`epoch_studies`),
    ``weak_start_epoch`` (report-only studies join from this epoch on; default 1, from the start).
    """

    #: the body parts it trains on (the retrain trigger ignores final labels of other studies)
    body_parts = (BODY_PART,)

    def __init__(
        self,
        model_dir: str,
        network: GLeVE,
        target_spacing: Sequence[float],
        publish_path: str,
        load_path: Optional[str | Sequence[str]] = None,
        description: str = "Train GLeVE (report-guided lesion grounding) from masks and reports",
        crop_margin_mm: Optional[float] = 16.0,
        config: Optional[Mapping[str, Any]] = None,
        visual_init_path: Optional[str] = None,
    ):
        super().__init__(description)
        self.visual_init_path = visual_init_path
        self.model_dir = model_dir
        self._network = network
        self.target_spacing = tuple(float(s) for s in target_spacing)
        self.publish_path = publish_path
        # where ``pretrained`` training starts: the first of these that exists (the server's last
        # published weights before the bundled ones, so retraining rounds build on each other)
        self.load_paths = [load_path] if isinstance(load_path, str) else list(load_path or [])
        self.crop_margin_mm = None if crop_margin_mm is None else float(crop_margin_mm)
        self.stats_path = os.path.join(model_dir, "train_stats.json")
        self._pre: dict[bool, Compose] = {}
        self._config: dict[str, Any] = {
            "max_epochs": 20,
            "learning_rate": 1e-3,
            "weight_decay": 1e-4,
            "mask_ratio": 1.0,
            "weak_supervision": True,
            "weak_per_epoch": None,
            "weak_start_epoch": 1,
            "val_split": 0.2,
            "val_interval": 1,
            "pretrained": True,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "seed": 0,
            "sigma_mm": 4.0,
            "crop_margin_mm": self.crop_margin_mm,
        }
        self._config.update(dict(config or {}))

    # ------------------------------------------------------------------ MONAI Label API
    # ------------------------------------------------------------------ datalist
    def _report_text(self, datastore: Datastore, image_id: str, studies_dir: str) -> Optional[str]:
        text = read_report(studies_dir, image_id)
        if text is None:
            info = datastore.get_image_info(image_id) or {}
            text = info.get("report")
        return text

    def datalist(self, datastore: Datastore) -> tuple[list[StudyEntry], dict[str, str]]:
        """Usable studies (sorted by id) and {image_id: why it was left out} for the others.

        Reasons: ``other_body`` (truth names another body part), ``no_report`` / ``no_organs``
        (nothing to ground / no prior), ``no_findings`` (no groundable lesion in the report) and
        ``unreadable_report: ...``.
        """
        entries, skipped = [], {}
        for image_id in sorted(datastore.list_images()):
            try:
                image = datastore.get_image_uri(image_id)
                studies_dir = os.path.dirname(image)
                if body_part_of(studies_dir, image_id) not in (None, BODY_PART):
                    skipped[image_id] = "other_body"
                    continue
                organ_id = datastore.get_label_by_image_id(image_id, ORGANS_TAG)
                if not organ_id:
                    skipped[image_id] = "no_organs"
                    continue
                text = self._report_text(datastore, image_id, studies_dir)
                if text is None or not str(text).strip():
                    skipped[image_id] = "no_report"
                    continue
                parsed = parse_report(text)
            except Exception as e:  # one bad study must not end the run
                logger.warning("GLeVE train: skipping %s, unreadable report: %s", image_id, e)
                skipped[image_id] = f"unreadable_report: {e}"
                continue
            if not parsed.findings:
                skipped[image_id] = "no_findings"
                continue
            label_id = datastore.get_label_by_image_id(image_id, LABEL_TAG)
            entries.append(
                StudyEntry(
                    image_id=image_id,
                    image=image,
                    organs=datastore.get_label_uri(organ_id, ORGANS_TAG),
                    label=datastore.get_label_uri(label_id, LABEL_TAG) if label_id else None,
                    report=text,
                    graph=build_lesion_graph(parsed),
                )
            )
        return entries, skipped

    # ------------------------------------------------------------------ pre-processing
    def pre_transforms(self, with_label: bool) -> Compose:
        if with_label not in self._pre:
            keys = ["image", "organs"] + (["label"] if with_label else [])
            self._pre[with_label] = Compose(
                load_ct(keys) + resample_and_window(keys, self.target_spacing, label_keys=["organs", "label"], hu_key="hu")
            )
        return self._pre[with_label]

    def load_study(self, entry: StudyEntry, sigma_mm: float, crop_margin_mm: Optional[float]) -> StudyTensors:
        """Read, resample, window, crop; soft organ maps; per-lesion target masks (when labelled)."""
        cfg = self._network.config
        data = {"image": entry.image, "organs": entry.organs}
        if entry.label:
            data["label"] = entry.label
        d = self.pre_transforms(entry.has_mask)(data)
        image = _plain(d["image"]).float()[0]
        hu = _plain(d["hu"]).float()[0]
        organs = _plain(d["organs"])[0].round().long().numpy()
        if organs.shape != tuple(image.shape):
            raise ValueError(f"organ map {organs.shape} and image {tuple(image.shape)} differ after resampling")
        pixdim = getattr(d["image"], "pixdim", None)
        spacing = tuple(float(s) for s in (pixdim[:3] if pixdim is not None else self.target_spacing))
        graph = entry.graph
        box = study_crop_box(organs, graph.lesions, cfg.organ_names, spacing, crop_margin_mm, downsample_factor(cfg))
        # soft maps from a context of 3 sigma around the box, so the crop does not cut their tails
        ctx = [int(math.ceil(3.0 * sigma_mm / s)) for s in spacing]
        organ_ctx = crop_pad(organs, grow_box(box, ctx), 0)
        names = {name: ANATOMY_STRUCTURES[name] for name in cfg.organ_names}
        soft = soft_organ_maps(organ_ctx, names, spacing, sigma_mm)
        inner = tuple(slice(c, c + hi - lo) for c, (lo, hi) in zip(ctx, box))
        soft = torch.from_numpy(np.ascontiguousarray(soft[(Ellipsis, *inner)]))
        organ_crop = crop_pad(organs, box, 0)
        out = StudyTensors(
            image_id=entry.image_id,
            image=crop_pad(image, box, 0.0)[None, None].contiguous(),
            hu=crop_pad(hu, box, HU_PAD).contiguous(),
            organ_maps=soft.float(),
            graph=graph,
            spacing=spacing,  # type: ignore[arg-type]
            box=box,
        )
        if entry.has_mask:
            inst = crop_pad(_plain(d["label"])[0].round().long(), box, 0)
            out.target_masks, out.assigned = self.lesion_targets(inst, graph, organ_crop, spacing)
            if any(a is None for a in out.assigned):
                logger.info("GLeVE train: %s: %d of %d report lesions have no annotated instance (all-zero target)",
                            entry.image_id, sum(a is None for a in out.assigned), len(out.assigned))
        return out

    def lesion_targets(
        self, instances: torch.Tensor, graph: LesionGraph, organ_map: np.ndarray, spacing: Sequence[float]
    ) -> tuple[torch.Tensor, list[Optional[int]]]:
        """(N, X, Y, Z) masks, one per report lesion, from a lesion instance map.

        A binary label (one id) with several report lesions is split into connected components
        first, so each lesion can get its own instance (user-drawn ``final`` labels are binary)."""
        cfg = self._network.config
        ids = [int(i) for i in torch.unique(instances).tolist() if int(i) > 0]
        if ids == [1] and graph.num_lesions > 1:
            from scipy import ndimage

            comp, _ = ndimage.label(instances.numpy() > 0, structure=np.ones((3, 3, 3)))
            instances = torch.from_numpy(comp).long()
        organ_masks = []
        for t in graph.lesions:
            oid = lesion_organ_ids([t], cfg.organ_names)
            organ_masks.append(torch.from_numpy(np.isin(organ_map, oid)) if oid else None)
        voxel_ml = float(np.prod(spacing)) / 1000.0
        assigned = assign_instances(instances, graph.lesions, organ_masks, voxel_ml)
        return lesion_target_masks(instances, assigned), assigned

    # ------------------------------------------------------------------ split
    @staticmethod
    def split(studies: Sequence[StudyTensors], val_split: float) -> tuple[list[StudyTensors], list[StudyTensors]]:
        """Deterministic: the last ``round(val_split * n)`` labelled studies by sorted id validate
        (at least one study always trains); report-only studies always train."""
        studies = sorted(studies, key=lambda s: s.image_id)
        n_val = int(round(float(val_split) * len(studies))) if val_split > 0 else 0
        labelled = [s for s in studies if s.has_mask]
        n_val = max(0, min(n_val, len(labelled), len(studies) - 1))
        val_ids = {s.image_id for s in labelled[len(labelled) - n_val :]} if n_val else set()
        return [s for s in studies if s.image_id not in val_ids], [s for s in studies if s.image_id in val_ids]

    # ------------------------------------------------------------------ steps
    @staticmethod
    def _forward(model: GLeVE, s: StudyTensors, device: torch.device, with_targets: bool):
        tm = s.target_masks.to(device) if (with_targets and s.target_masks is not None) else None
        out = model(s.image.to(device), s.organ_maps.to(device), s.graph, hu_image=s.hu.to(device), spacing=s.spacing, target_masks=tm)
        return out, tm

    @torch.no_grad()
    def validate(self, model: GLeVE, studies: Sequence[StudyTensors], device: torch.device) -> dict[str, float]:
        """Mean per-lesion Dice of ``label_map()`` against the assigned instances (key metric) and
        lesion recall LR / LLS (000 eq. 9) over the same lesions."""
        model.eval()
        dices, scores = [], []
        for s in studies:
            out, _ = self._forward(model, s, device, with_targets=False)
            pred = out.label_map().cpu()
            masks = s.target_masks > 0.5
            gt = torch.zeros(pred.shape, dtype=torch.long)
            for i, a in enumerate(s.assigned):
                if a is None:
                    continue  # a report lesion without an annotated instance has nothing to score
                gt[masks[i]] = i + 1
                dices.append(dice((pred == i + 1).numpy(), masks[i].numpy()))
            scores.append(match_lesions(pred.numpy(), gt.numpy(), s.spacing, pred_instances="labels", gt_instances="labels"))
        model.train()
        agg = aggregate(scores) if scores else {}
        return {
            "val_mean_dice": float(np.mean(dices)) if dices else math.nan,
            "val_LR": float(agg.get("LR_micro", math.nan)),
            "val_LLS": float(agg.get("LLS_micro", math.nan)),
            "val_lesions": len(dices),
        }

    @staticmethod
    def apply_mask_ratio(train: Sequence[StudyTensors], mask_ratio: float, weak_supervision: bool, seed: int) -> list[StudyTensors]:
        """Keep the masks of ``round(mask_ratio * n)`` of the ``n`` labelled training studies (a
        seeded choice; at least one when the ratio is > 0); the others become report-only. Without
        ``weak_supervision`` every study left without a mask is dropped."""
        if not 0.0 <= float(mask_ratio) <= 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
        labelled = sorted((s for s in train if s.has_mask), key=lambda s: s.image_id)
        n_keep = int(round(float(mask_ratio) * len(labelled)))
        if mask_ratio > 0 and labelled:
            n_keep = max(1, n_keep)
        keep = {s.image_id for s in random.Random(int(seed)).sample(labelled, n_keep)}
        out = []
        for s in train:
            if s.has_mask and s.image_id not in keep:
                s = copy.copy(s)
                s.target_masks, s.assigned = None, []
            if s.has_mask or weak_supervision:
                out.append(s)
        return out

    @staticmethod
    def epoch_studies(train: Sequence[StudyTensors], weak_per_epoch: Optional[int], rng: random.Random, include_weak: bool = True) -> list[StudyTensors]:
        """One epoch's studies in a shuffled order: every study with a mask, and ``weak_per_epoch``
        report-only studies drawn afresh each epoch (all of them when None). Drawing a few keeps an
        epoch of "r % masks + reports" close in cost to one of "r % masks alone" when report-only
        studies outnumber masked ones 9 to 1 (Table 1's 10 %); each report-only study is drawn with
        probability k / n per epoch, so over a run of many epochs nearly all of them train.

        ``include_weak=False`` (epochs before ``weak_start_epoch``): the masked studies only, drawn
        with the same random calls as a run without report-only studies, so "+ reports" and "masks
        alone" train identically until the reports join."""
        order = list(train)
        if not include_weak:
            weak_per_epoch = 0
        if weak_per_epoch is not None:
            weak = [s for s in order if not s.has_mask]
            if weak_per_epoch < len(weak):
                drawn = {id(s) for s in rng.sample(weak, weak_per_epoch)}
                order = [s for s in order if s.has_mask or id(s) in drawn]
        rng.shuffle(order)
        return order

    # ------------------------------------------------------------------ persistence
    def _load_pretrained(self, model: GLeVE) -> Optional[str]:
        path = next((p for p in self.load_paths if p and os.path.exists(p)), None)
        if path is None:
            return None
        try:
            ckpt = torch.load(path, map_location="cpu")
            state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
            model.load_state_dict(state)
        except Exception as e:  # a checkpoint of another config: train from the current weights
            logger.warning("GLeVE train: cannot start from %s (%s); training from the current weights", path, e)
            return None
        logger.info("GLeVE train: starting from %s", path)
        return path

    def _publish(self, model: GLeVE, epoch: int, metric: Optional[float]) -> None:
        ckpt = {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": model.config.to_dict(),
            "epoch": int(epoch),
            "metric": metric,
        }
        save_checkpoint_atomic(ckpt, self.publish_path)
        logger.info("GLeVE train: published epoch %d (metric %s) to %s", epoch, metric, self.publish_path)

    def _write_stats(self, stats: Mapping[str, Any]) -> None:
        write_stats(stats, self.stats_path)

    # ------------------------------------------------------------------ run
    def __call__(self, request: Mapping[str, Any], datastore: Datastore) -> dict[str, Any]:
        """Train, publish, and return the stats (also written to ``<model_dir>/train_stats.json``
        after every epoch).

        Stats: ``total_epochs`` (= max_epochs, as MONAI's trainers), ``epoch``, ``best_metric`` /
        ``best_metric_epoch`` (key metric ``val_LLS``, ties broken by Dice; None without validation),
        ``train_loss`` (last epoch's mean L_total), ``train_seg_loss`` (over studies with a mask),
        ``train_weak_loss``, ``val_mean_dice`` / ``val_LR`` / ``val_LLS`` (last validation),
        ``n_train``, ``n_val``, ``n_weak`` (report-only training studies), ``n_skipped`` (studies
        whose report or volume could not be read), ``n_no_findings``, ``n_other_body``,
        ``n_incomplete`` (no report or no organ map), ``skipped`` ({id: reason}), ``history`` (one
        row per epoch), ``start_ts``, ``total_time`` (h:mm:ss) and ``total_seconds``.
        """
        req = {**self._config, **{k: v for k, v in dict(request or {}).items() if v is not None}}
        start = time.time()
        max_epochs = int(req["max_epochs"])
        lr = float(req.get("lr", req["learning_rate"]))
        val_split = float(req["val_split"])
        val_interval = max(1, int(req["val_interval"]))
        device = torch.device(req["device"] if (str(req["device"]) != "cuda" or torch.cuda.is_available()) else "cpu")
        sigma_mm = float(req["sigma_mm"])
        margin = req.get("crop_margin_mm", self.crop_margin_mm)
        margin = None if margin is None or str(margin).lower() in ("none", "") else float(margin)
        weak_per_epoch = req.get("weak_per_epoch")
        weak_per_epoch = None if weak_per_epoch is None or str(weak_per_epoch).lower() in ("", "none", "all") else int(weak_per_epoch)
        if weak_per_epoch is not None and weak_per_epoch < 0:
            raise ValueError(f"weak_per_epoch must be >= 0 (or none for all), got {weak_per_epoch}")
        weak_start_epoch = req.get("weak_start_epoch")
        weak_start_epoch = 1 if weak_start_epoch is None or str(weak_start_epoch).strip() == "" else int(weak_start_epoch)
        if weak_start_epoch < 1:
            raise ValueError(f"weak_start_epoch must be >= 1, got {weak_start_epoch}")

        model = self._network
        entries, skipped = self.datalist(datastore)
        studies: list[StudyTensors] = []  # the in-memory cache: every epoch reuses these tensors
        for e in entries:
            e.graph.embed(model.text_encoder)  # frozen; an encoder failure is not the study's fault
            try:
                studies.append(self.load_study(e, sigma_mm, margin))
            except Exception as err:  # corrupt / non-CT volume, mismatched maps: skip the study
                logger.warning("GLeVE train: skipping %s, cannot pre-process: %s", e.image_id, err)
                skipped[e.image_id] = f"unreadable_volume: {err}"
        n_unreadable = sum(1 for r in skipped.values() if r.startswith("unreadable"))
        if not studies:
            raise ValueError(f"GLeVE train: no usable study (abdominal, report with lesions, organ map); skipped: {skipped}")
        train, val = self.split(studies, val_split)
        mask_ratio = float(req["mask_ratio"])
        weak_supervision = truthy(req["weak_supervision"])
        train = self.apply_mask_ratio(train, mask_ratio, weak_supervision, int(req["seed"]))
        if not train:
            raise ValueError("GLeVE train: no training study left (mask_ratio 0 without weak supervision?)")
        logger.info("GLeVE train: %d train (%d report-only), %d val, %d skipped", len(train), sum(not s.has_mask for s in train), len(val), len(skipped))

        model.to(device)
        pretrained = self._load_pretrained(model) if truthy(req["pretrained"]) else None
        if pretrained is None and self.visual_init_path:
            pretrained = init_visual_encoder(model, self.visual_init_path)
        model.train()
        loss_fn = model.make_loss()
        for key in ("lambda_weak", "lambda_weak_response", "lambda_weak_pseudo"):  # per-run overrides of eq. 7-8's weights (experiments)
            if req.get(key) is not None:
                setattr(loss_fn.weights, key, float(req[key]))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=float(req["weight_decay"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, max_epochs))
        rng = random.Random(int(req["seed"]))

        stats: dict[str, Any] = {
            "name": "gleve",
            "total_epochs": max_epochs,
            "epoch": 0,
            "current_epoch": 0,
            "best_metric": None,
            "best_metric_epoch": None,
            "key_metric_name": KEY_METRIC,
            "train_loss": None,
            "n_train": len(train),
            "n_val": len(val),
            "n_weak": sum(not s.has_mask for s in train),
            "n_skipped": n_unreadable,
            "n_no_findings": sum(r == "no_findings" for r in skipped.values()),
            "n_other_body": sum(r == "other_body" for r in skipped.values()),
            "n_incomplete": sum(r in ("no_report", "no_organs") for r in skipped.values()),
            "n_lesions": sum(s.graph.num_lesions for s in studies),
            "n_unassigned_lesions": sum(a is None for s in studies if s.has_mask for a in s.assigned),
            "skipped": skipped,
            "train_ids": [s.image_id for s in train],
            "val_ids": [s.image_id for s in val],
            "crop_margin_mm": margin,
            "sigma_mm": sigma_mm,
            "learning_rate": lr,
            "mask_ratio": mask_ratio,
            "weak_supervision": weak_supervision,
            "weak_per_epoch": weak_per_epoch,
            "weak_start_epoch": weak_start_epoch,
            "device": str(device),
            "pretrained": pretrained,
            "publish_path": self.publish_path,
            "start_ts": int(start),
            "history": [],
        }
        best, published = (-math.inf, -math.inf), False
        for epoch in range(1, max_epochs + 1):
            order = self.epoch_studies(train, weak_per_epoch, rng, include_weak=epoch >= weak_start_epoch)
            sums = {"total": 0.0, "seg": 0.0, "weak": 0.0}
            n_steps = n_masked = n_bad = 0
            for s in order:
                out, tm = self._forward(model, s, device, with_targets=s.has_mask)
                losses = loss_fn(out, tm)  # tm None <=> report-only: delta = 0 in eq. 8
                total = losses["total"]
                if not torch.isfinite(total):
                    logger.warning("GLeVE train: non-finite loss on %s at epoch %d; step skipped", s.image_id, epoch)
                    opt.zero_grad(set_to_none=True)
                    n_bad += 1
                    continue
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                n_steps += 1
                n_masked += int(tm is not None)
                for k in sums:
                    sums[k] += float(losses[k].detach())
            row: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": sums["total"] / n_steps if n_steps else math.nan,
                "seg_loss": sums["seg"] / n_masked if n_masked else None,  # over the studies with a mask
                "weak_loss": sums["weak"] / n_steps if n_steps else math.nan,
                "steps": n_steps,
                "skipped_steps": n_bad,
                "lr": opt.param_groups[0]["lr"],
            }
            sched.step()
            metric: Optional[float] = None
            if val and (epoch % val_interval == 0 or epoch == max_epochs):
                row.update(self.validate(model, val, device))
                metric = row[KEY_METRIC]
                rank = (metric, row["val_mean_dice"] if math.isfinite(row["val_mean_dice"]) else -math.inf)
                if metric is not None and math.isfinite(metric) and rank > best:
                    best = rank
                    stats.update(best_metric=metric, best_metric_epoch=epoch)
                    self._publish(model, epoch, metric)
                    published = True
            if not val:  # no validation: the last epoch is the model
                stats.update(best_metric_epoch=epoch)
                self._publish(model, epoch, None)
                published = True
            logger.info("GLeVE train: epoch %d/%d %s", epoch, max_epochs, {k: v for k, v in row.items() if k != "epoch"})
            stats["history"].append(row)
            stats.update(
                epoch=epoch,
                current_epoch=epoch,
                train_loss=row["train_loss"],
                train_seg_loss=row["seg_loss"],  # None when no study of the epoch had a mask
                train_weak_loss=row["weak_loss"],
                current_time=elapsed(start),
            )
            for k in ("val_mean_dice", "val_LR", "val_LLS"):
                if k in row:
                    stats[k] = row[k]
            self._write_stats(stats)
        if not published:  # validation never gave a finite metric: keep the last weights
            self._publish(model, max_epochs, None)
            stats.update(best_metric_epoch=max_epochs)
        stats.pop("current_time", None)
        stats["total_time"] = elapsed(start)
        stats["total_seconds"] = round(time.time() - start, 3)
        self._write_stats(stats)
        return copy.deepcopy(jsonable(stats))


def _plain(x) -> torch.Tensor:
    """A plain tensor (MetaTensors would carry their meta data through every op of every step)."""
    return x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)
