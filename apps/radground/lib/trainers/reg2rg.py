"""``reg2rg`` train task: Reg2RG (004) on the datastore's chest studies with region reports.

A plain torch loop, as the GLeVE trainer: every study is its own prompt (its regions, a fresh
shuffled order each step, 004 §3.4; or, with ``joint_regions`` off as in the tiny variant, one
prompt per region, batched), which MONAI's SupervisedTrainer does not model. Region masks
come from the datastore's ``regions`` label (else its ``organs`` structure map, merged into
regions); targets from the truth's ``region_reports`` (synthetic studies), else from the report's
region sections as the project's parser finds them. Inputs are prepared once per study and kept
in memory (crops and masks in half precision, so a thousand studies fit). Optimiser: AdamW with a
linear warm-up then a constant rate (004 §4.2). The best weights are published to ``publish_path``
as ``{"model", "config"}`` and stats go to ``<model_dir>/train_stats.json``.

Two choices 004 does not need to make, both off by default (the paper's behaviour):

- ``normal_region_keep`` < 1 (region-balanced sampling, :func:`balanced_regions`): each step
  trains on a subset of the regions chosen so that, per region, normal and abnormal reports are
  equally frequent (normal ones at least with this probability). In the synthetic data 19 % of
  region reports name a finding, but 73 % of the lung ones: the model wrote the prior (a nodule in
  every lung, nothing elsewhere), and the loss with another study's region features was the same
  as with the study's own.
- ``select_by: finding_f1``: the checkpoint is chosen by the finding-mention F1 of greedy reports
  on the validation studies (the project's parser labels both sides, as the CE metric does)
  instead of the LM loss, which the wording of normal sentences dominates.

``region_masks``: ``truth`` (the datastore's ``regions``/``organs`` label) or ``anatomy`` (the
anatomy task's structure map, the masks the infer task serves with, as 004 trains on SAT's;
computed once per study and cached on disk by :mod:`lib.trainers.reg2rg_masks`).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from monailabel.interfaces.datastore import Datastore

from lib.anatomy.labels import region_map
from lib.data.region_reports import (
    RegionInputs,
    build_prompt,
    build_target,
    encode_example,
    fill_region_holes,
    load_oriented,
    region_inputs,
    region_targets,
    shuffled,
)
from lib.data.studies import body_part_of, read_report, read_truth
from lib.metrics.report_generation import clinical_efficacy, finding_labels, region_finding_labels
from lib.networks.reg2rg import Reg2RG
from lib.networks.reg2rg.decode import write_region_reports
from lib.trainers.common import PlainTrainTask, save_checkpoint_atomic, truthy, write_stats
from lib.trainers.reg2rg_aux import FindingHead, decision_weights, finding_aux_loss
from lib.trainers.reg2rg_masks import AnatomyRegionMasks

logger = logging.getLogger(__name__)

REGIONS_TAG, ORGANS_TAG = "regions", "organs"
ANATOMY_KIND = "anatomy"  # label_kind of a study whose region map comes from the anatomy task
REGION_MASK_SOURCES = ("truth", "anatomy")


@dataclass
class RegionStudy:
    image_id: str
    inputs: RegionInputs  # regions with both a mask and a report, canonical order
    reports: dict[str, str]

    @property
    def abnormal(self) -> list[str]:
        """Regions whose target reports a present finding (the project's parser decides)."""
        return [r for r in self.inputs.names if finding_labels(self.reports[r], r)]


def abnormal_rates(studies: Sequence[RegionStudy]) -> dict[str, float]:
    """Region -> share of the studies (that have the region) whose report of it names a finding."""
    seen: dict[str, list[int]] = {}
    for s in studies:
        abnormal = set(s.abnormal)
        for r in s.inputs.names:
            seen.setdefault(r, []).append(r in abnormal)
    return {r: float(np.mean(v)) for r, v in seen.items()}


def keep_probability(rate: float, abnormal: bool, keep: float) -> float:
    """Probability of training on a region report this step: the rarer kind (normal or abnormal) of a
    region always, the commoner one as often as makes the two equally frequent; a normal report at
    least with probability ``keep`` (so regions that are never abnormal are still written)."""
    if abnormal:
        return 1.0 if rate <= 0.5 else (1.0 - rate) / rate
    return 1.0 if rate >= 0.5 else max(keep, rate / (1.0 - rate))


def balanced_regions(study: RegionStudy, rng: np.random.Generator, keep: float, rates: Mapping[str, float]) -> RegionStudy:
    """The study with each region kept with :func:`keep_probability` (at least one region):
    region-balanced sampling for one training step. ``rates``: :func:`abnormal_rates` of the
    training studies. In every region normal and abnormal reports then come about equally often, so
    the text prior cannot tell them apart and only the region's features can."""
    if keep >= 1.0:
        return study
    abnormal = set(study.abnormal)
    idx = [i for i, r in enumerate(study.inputs.names) if rng.random() < keep_probability(rates.get(r, 0.0), r in abnormal, keep)]
    if not idx:
        idx = [int(rng.integers(len(study.inputs.names)))]
    inputs = study.inputs.subset(idx)
    return RegionStudy(study.image_id, inputs, {r: study.reports[r] for r in inputs.names})


def example(model: Reg2RG, study: RegionStudy, rng: Optional[np.random.Generator]):
    """(input ids, labels, inputs in prompt order) of one study: shuffled regions when ``rng`` is given
    and the model uses local features; the GLB-only ablation writes the regions in canonical order."""
    cfg = model.config
    n = len(study.inputs.names)
    order = shuffled(study.inputs.names, rng) if (rng is not None and cfg.uses_local) else list(range(n))
    inputs = study.inputs.subset(order)
    prompt = build_prompt(n, use_global=cfg.use_global, use_local=cfg.uses_local)
    ids, labels = encode_example(model.tokenizer, prompt, build_target(inputs.names, study.reports))
    return ids, labels, inputs


def study_loss(model: Reg2RG, study: RegionStudy, rng: Optional[np.random.Generator], device) -> torch.Tensor:
    """LM loss of one study: one prompt with every region (004), or one prompt per region
    (``joint_regions`` off: ``<region_0>`` is that region, its report the target)."""
    return study_losses(model, study, rng, device)[0]


def study_losses(
    model: Reg2RG,
    study: RegionStudy,
    rng: Optional[np.random.Generator],
    device,
    head: Optional[FindingHead] = None,
    decision_weight: float = 1.0,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(LM loss, finding-label auxiliary loss or None) of one study; the auxiliary loss only with a ``head``
    (:mod:`lib.trainers.reg2rg_aux`), computed on the same visual tokens the LM reads. ``decision_weight``
    != 1 weighs each region's prefix and first sentence that much more in the LM loss."""
    cfg = model.config
    f32 = torch.float32
    n_texture = cfg.n_visual_tokens if cfg.use_texture else 0
    weighted = decision_weight != 1.0
    if cfg.joint_regions or not cfg.uses_local:
        ids, labels, inputs = example(model, study, rng)
        vols = (inputs.global_volume.to(device, f32), inputs.crops.to(device, f32), inputs.masks.to(device, f32))
        if head is None and not weighted:
            return model(ids.to(device), labels.to(device), *vols), None
        glb, reg = model.encode(*vols)
        weights = [decision_weights(model.tokenizer, inputs.names, study.reports, decision_weight)] if weighted else None
        lm = model.forward_many([(ids.to(device), labels.to(device), reg)], glb, weights)
        aux = finding_aux_loss(head, glb, reg, n_texture, inputs.names, study.reports) if head is not None else None
        return lm, aux
    inputs = study.inputs
    glb, reg = model.encode(inputs.global_volume.to(device, f32), inputs.crops.to(device, f32), inputs.masks.to(device, f32))
    prompt = build_prompt(1, use_global=cfg.use_global)
    examples, weights = [], []
    for j, name in enumerate(inputs.names):
        ids, labels = encode_example(model.tokenizer, prompt, build_target([name], study.reports))
        examples.append((ids.to(device), labels.to(device), reg[j : j + 1]))
        if weighted:
            weights.append(decision_weights(model.tokenizer, [name], study.reports, decision_weight))
    lm = model.forward_many(examples, glb, weights if weighted else None)
    if head is None:
        return lm, None
    return lm, finding_aux_loss(head, glb, reg, n_texture, inputs.names, study.reports)


def model_uses_regions(model: Reg2RG) -> bool:
    """Region-balanced sampling needs region prompts: the GLB-only ablation writes every region in one
    answer from the global features, so dropping regions would teach it to leave sections out."""
    return model.config.uses_local


class Reg2RGTrain(PlainTrainTask):
    """Request keys (defaults in :meth:`config`): ``max_epochs``, ``learning_rate``, ``weight_decay``,
    ``warmup_steps``, ``val_split``, ``val_interval``, ``max_minutes`` (wall-clock budget; 0 = none),
    ``pretrained`` (start from the bundled weights), ``device``, ``seed``, ``normal_region_keep`` (1 =
    every region every step), ``select_by`` (``val_loss`` or ``finding_f1``), ``val_max_studies``
    (validation studies whose reports are generated for ``finding_f1``), ``max_new_tokens``,
    ``grad_accum_steps`` (studies per optimiser step: 004 trains with an effective batch of 16),
    ``finding_aux_weight`` (> 0: the finding-label auxiliary loss of :mod:`lib.trainers.reg2rg_aux`),
    ``decision_weight`` (> 1: each region's prefix and first sentence weigh more in the LM loss, same module),
    ``texture_outside_hu`` (the crop background outside the region mask, see ``Reg2RGConfig``; default: the network's),
    ``fill_region_holes`` (give each lung back the voxels it encloses, lesions the anatomy task labelled otherwise, before masking; default: the network's),
    ``region_masks`` (``truth``: the datastore's region/structure labels; ``anatomy``: the anatomy
    task's maps, as served, cached under ``<model_dir>/anatomy_regions``)."""

    def __init__(
        self,
        model_dir: str,
        network: Reg2RG,
        publish_path: str,
        load_path: Optional[str] = None,
        description: str = "Train Reg2RG (region-guided report generation) on chest studies with reports",
        config: Optional[Mapping[str, Any]] = None,
        anatomy_task: Any = None,
    ):
        super().__init__(description)
        self.model_dir = model_dir
        self._network = network
        self.publish_path = publish_path
        self.load_path = load_path
        self.stats_path = os.path.join(model_dir, "train_stats.json")
        self.anatomy_task = anatomy_task  # the anatomy infer task, or a factory of it (region_masks: anatomy)
        self._masks: Optional[AnatomyRegionMasks] = None
        self._config: dict[str, Any] = {
            "max_epochs": 10,
            "learning_rate": 5e-4,
            "weight_decay": 0.0,
            "warmup_steps": 20,
            "val_split": 0.1,
            "val_interval": 1,
            "max_minutes": 0,
            "pretrained": True,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "seed": 0,
            "normal_region_keep": 1.0,
            "select_by": "val_loss",
            "val_max_studies": 32,
            "max_new_tokens": 160,
            "grad_accum_steps": 1,
            "finding_aux_weight": 0.0,
            "decision_weight": 1.0,
            "region_masks": "anatomy" if anatomy_task is not None else "truth",
        }
        self._config.update(dict(config or {}))

    # ------------------------------------------------------------------ data
    def region_masks(self) -> AnatomyRegionMasks:
        """The cached anatomy-task region maps (``region_masks: anatomy``)."""
        if self.anatomy_task is None:
            raise ValueError("region_masks 'anatomy' needs the anatomy task (this train task was built without one)")
        if self._masks is None:
            self._masks = AnatomyRegionMasks(self.anatomy_task, os.path.join(self.model_dir, "anatomy_regions"))
        return self._masks

    def datalist(self, datastore: Datastore, masks: str = "truth") -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Usable chest studies ({image_id, image, label, label_kind, reports}) and {image_id: why not} for the rest.
        ``masks``: ``truth`` needs a region or structure label per study; ``anatomy`` takes the region
        map from the anatomy task when the study is loaded (``label`` None, ``label_kind`` anatomy)."""
        if masks not in REGION_MASK_SOURCES:
            raise ValueError(f"region_masks must be one of {REGION_MASK_SOURCES}, got {masks!r}")
        entries, skipped = [], {}
        for image_id in sorted(datastore.list_images()):
            try:
                image = datastore.get_image_uri(image_id)
                studies_dir = os.path.dirname(image)
                if body_part_of(studies_dir, image_id) not in (None, "chest"):
                    skipped[image_id] = "other_body"
                    continue
                label, kind = None, (ANATOMY_KIND if masks == "anatomy" else None)
                for tag in (REGIONS_TAG, ORGANS_TAG) if masks == "truth" else ():
                    lid = datastore.get_label_by_image_id(image_id, tag)
                    if lid:
                        label, kind = datastore.get_label_uri(lid, tag), tag
                        break
                if kind is None:
                    skipped[image_id] = "no_region_masks"
                    continue
                report = read_report(studies_dir, image_id) or (datastore.get_image_info(image_id) or {}).get("report")
                reports = region_targets(read_truth(studies_dir, image_id), report)
            except Exception as e:  # one bad study must not end the run
                logger.warning("Reg2RG train: skipping %s: %s", image_id, e)
                skipped[image_id] = f"unreadable: {type(e).__name__}"
                continue
            if not reports:
                skipped[image_id] = "no_region_reports"
                continue
            entries.append({"image_id": image_id, "image": image, "label": label, "label_kind": kind, "reports": reports})
        return entries, skipped

    def load_study(self, entry: Mapping[str, Any]) -> Optional[RegionStudy]:
        cfg = self._network.config
        img = load_oriented(entry["image"])
        if entry["label_kind"] == ANATOMY_KIND:
            lab = self.region_masks().regions(entry["image"])
        else:
            lab = load_oriented(entry["label"]).astype(np.int32)
        if entry["label_kind"] == ORGANS_TAG:
            lab = region_map(lab)
        if cfg.fill_region_holes:  # the project orientation (LPS): axis 2 is axial
            lab = fill_region_holes(lab, axial_axis=2)
        regions = [r for r in entry["reports"]]
        from lib.data.region_reports import REGION_NAMES

        inputs = region_inputs(img, lab, cfg.image_size, cfg.mask_size, regions=[r for r in REGION_NAMES if r in regions], outside_hu=cfg.texture_outside_hu)
        if not inputs.names:
            return None
        inputs = RegionInputs(inputs.names, inputs.global_volume.half(), inputs.crops.half(), inputs.masks.half(), inputs.voxels)
        return RegionStudy(entry["image_id"], inputs, {r: entry["reports"][r] for r in inputs.names})

    # ------------------------------------------------------------------ weights
    def _load_pretrained(self, model: Reg2RG) -> Optional[str]:
        if not self.load_path or not os.path.exists(self.load_path):
            return None
        try:
            ckpt = torch.load(self.load_path, map_location="cpu")
            state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
            own = model.state_dict()
            fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            model.load_state_dict(fits, strict=False)
            new = sorted(k for k in own if k not in fits and not (model.config.lm_path and k.startswith("lm.") and "lora_" not in k))
            if new:  # a module the checkpoint predates (or a changed size) starts from its initial weights
                logger.warning("Reg2RG train: %d tensors not in %s start fresh: %s", len(new), self.load_path, new[:8])
        except Exception as e:
            logger.warning("Reg2RG train: cannot start from %s (%s); training from the current weights", self.load_path, e)
            return None
        logger.info("Reg2RG train: starting from %s", self.load_path)
        return self.load_path

    def _publish(self, model: Reg2RG, epoch: int, metric: Optional[float]) -> None:
        ckpt = {"model": model.checkpoint_state_dict(), "config": model.config.to_dict(), "epoch": int(epoch), "metric": metric}
        save_checkpoint_atomic(ckpt, self.publish_path)

    def _write_stats(self, stats: Mapping[str, Any]) -> None:
        write_stats(stats, self.stats_path)

    @staticmethod
    def validate(model: Reg2RG, studies: Sequence[RegionStudy], device) -> Optional[float]:
        """Mean LM loss on the validation studies, each in a shuffled order that is the same at every
        validation (the canonical order would favour the text prior over reading the regions)."""
        if not studies:
            return None
        model.eval()
        rng = np.random.default_rng(12345)
        with torch.no_grad():
            losses = [float(study_loss(model, s, rng, device)) for s in studies]
        model.train()
        return float(np.mean(losses))

    @staticmethod
    def validate_findings(model: Reg2RG, studies: Sequence[RegionStudy], max_new_tokens: int) -> Optional[dict[str, Any]]:
        """Finding-mention precision/recall/F1 of greedy reports on ``studies``: per study, the CE labels
        of the generated region texts against those of the target region texts (micro over pairs)."""
        if not studies:
            return None
        model.eval()
        refs, preds = [], []
        per_region = model.config.uses_local and not model.config.joint_regions
        for s in studies:
            given = s.inputs.names
            budget = max_new_tokens if per_region else max_new_tokens * len(given)  # one answer holds every region
            records, _ = write_region_reports(model, s.inputs, given, budget)
            refs.append(region_finding_labels(s.reports))
            preds.append(region_finding_labels({r["region"]: r["text"] for r in records if r["text"]}))
        model.train()
        ce = clinical_efficacy(refs, preds)
        return {k: ce[k] for k in ("precision", "recall", "f1")}

    # ------------------------------------------------------------------ run
    def __call__(self, request: Mapping[str, Any], datastore: Datastore) -> dict[str, Any]:
        req = {**self._config, **{k: v for k, v in dict(request or {}).items() if v is not None}}
        start = time.time()
        device = torch.device(req["device"] if (str(req["device"]) != "cuda" or torch.cuda.is_available()) else "cpu")
        max_epochs, val_interval = int(req["max_epochs"]), max(1, int(req["val_interval"]))
        keep = float(req["normal_region_keep"])
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"normal_region_keep must be in (0, 1], got {keep}")
        select_by = str(req["select_by"])
        if select_by not in ("val_loss", "finding_f1"):
            raise ValueError(f"select_by must be val_loss or finding_f1, got {select_by!r}")
        balance = keep < 1.0 and model_uses_regions(self._network)
        accum = max(1, int(req["grad_accum_steps"]))
        aux_weight = float(req["finding_aux_weight"])
        if aux_weight < 0:
            raise ValueError(f"finding_aux_weight must be >= 0, got {aux_weight}")
        decision_weight = float(req["decision_weight"])
        if decision_weight <= 0:
            raise ValueError(f"decision_weight must be > 0, got {decision_weight}")
        budget = float(req.get("max_minutes") or 0) * 60.0
        rng = np.random.default_rng(int(req["seed"]))
        torch.manual_seed(int(req["seed"]))

        masks = str(req["region_masks"]).strip().lower()
        model = self._network
        if req.get("texture_outside_hu") is not None:  # saved in the checkpoint's config; the infer task reads it there
            model.config.texture_outside_hu = float(req["texture_outside_hu"])
        if req.get("fill_region_holes") is not None:  # saved the same way
            model.config.fill_region_holes = truthy(req["fill_region_holes"])
        entries, skipped = self.datalist(datastore, masks)  # checks the value of region_masks
        if masks == "anatomy":
            self.region_masks()  # no anatomy task: a clear error, not every study skipped
        studies = []
        for e in entries:
            try:
                s = self.load_study(e)
            except Exception as ex:
                logger.warning("Reg2RG train: skipping %s: %s", e["image_id"], ex)
                skipped[e["image_id"]] = f"unreadable: {type(ex).__name__}"
                continue
            if s is None:
                skipped[e["image_id"]] = "no_region_with_mask_and_report"
            else:
                studies.append(s)
        if not studies:
            raise ValueError(f"no chest study with region masks and region reports to train on ({len(skipped)} skipped)")
        order = rng.permutation(len(studies))
        n_val = int(round(len(studies) * float(req["val_split"]))) if len(studies) > 1 else 0
        val = [studies[i] for i in order[:n_val]]
        train = [studies[i] for i in order[n_val:]]

        rates = abnormal_rates(train)
        started_from = self._load_pretrained(model) if str(req["pretrained"]).lower() not in ("false", "0", "no") else None
        model.to(device).train()
        params = [p for p in model.parameters() if p.requires_grad]
        head = FindingHead(model.hidden).to(device) if aux_weight > 0 else None  # training aid, not checkpointed
        if head is not None:
            params += list(head.parameters())
        opt = torch.optim.AdamW(params, lr=float(req.get("lr", req["learning_rate"])), weight_decay=float(req["weight_decay"]))
        warmup = max(1, int(req["warmup_steps"]))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))

        stats: dict[str, Any] = {
            "total_epochs": max_epochs,
            "n_train": len(train),
            "n_val": len(val),
            "n_skipped": len(skipped),
            "skipped": skipped,
            "started_from": started_from,
            "publish_path": self.publish_path,
            "start_ts": int(start),
            "history": [],
            "best_metric": None,
            "best_metric_epoch": None,
            "key_metric_name": select_by,
            "normal_region_keep": keep if balance else 1.0,
            "finding_aux_weight": aux_weight,
            "decision_weight": decision_weight,
            "region_masks": masks,
            "abnormal_rates": {r: round(v, 3) for r, v in rates.items()},
        }
        best: tuple[float, float] = (-math.inf, -math.inf)  # (finding F1 or -loss, -loss): higher is better
        epoch, out_of_time = 0, False
        for epoch in range(1, max_epochs + 1):
            losses, aux_losses = [], []
            opt.zero_grad(set_to_none=True)
            for n_done, i in enumerate(rng.permutation(len(train)), start=1):
                step_study = balanced_regions(train[i], rng, keep, rates) if balance else train[i]
                loss, aux = study_losses(model, step_study, rng, device, head, decision_weight)
                ((loss if aux is None else loss + aux_weight * aux) / accum).backward()
                if aux is not None:
                    aux_losses.append(aux.detach().item())
                if n_done % accum == 0 or n_done == len(train):
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                losses.append(loss.detach().item())
                if budget and time.time() - start > budget:
                    out_of_time = True
                    break
            row = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None}
            if aux_losses:
                row["train_aux_loss"] = float(np.mean(aux_losses))
            if val and (epoch % val_interval == 0 or epoch == max_epochs or out_of_time):
                v = self.validate(model, val, device)
                row["val_loss"] = v
                score = (-v, -v)
                if select_by == "finding_f1":
                    found = self.validate_findings(model, val[: int(req["val_max_studies"])], int(req["max_new_tokens"]))
                    row["val_finding"] = found
                    score = (found["f1"], -v)
                if v is not None and score > best:
                    best = score
                    metric = score[0] if select_by == "finding_f1" else v
                    self._publish(model, epoch, score[0])
                    stats.update(best_metric=metric, best_metric_epoch=epoch)
            elif not val:
                self._publish(model, epoch, None)
            stats["history"].append(row)
            stats.update(epoch=epoch, train_loss=row["train_loss"], total_seconds=round(time.time() - start, 1))
            self._write_stats(stats)
            logger.info("Reg2RG train: epoch %d %s", epoch, row)
            if out_of_time:
                break
        if stats["best_metric"] is None:
            self._publish(model, epoch, None)
        stats["stopped_by_budget"] = out_of_time
        stats["total_seconds"] = round(time.time() - start, 1)
        self._write_stats(stats)
        model.eval()
        return stats
