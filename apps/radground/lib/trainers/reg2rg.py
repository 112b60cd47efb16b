"""``reg2rg`` train task: Reg2RG (004) on the datastore's chest studies with region reports.

A plain torch loop, as the GLeVE trainer: every study is its own prompt (its regions, a fresh
shuffled order each step, 004 §3.4; or, with ``joint_regions`` off as in the tiny variant, one
prompt per region, batched), which MONAI's SupervisedTrainer does not model. Region masks
come from the datastore's ``regions`` label (else its ``organs`` structure map, merged into
regions); targets from the truth's ``region_reports`` (synthetic studies), else from the report's
region sections as the project's parser finds them. Inputs are prepared once per study and kept
in memory. Optimiser: AdamW with a linear warm-up then a constant rate (004 §4.2). The key metric
is the validation LM loss; the best weights are published to ``publish_path`` as
``{"model", "config"}`` and stats go to ``<model_dir>/train_stats.json``.
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
from monailabel.interfaces.tasks.train import TrainTask

from lib.anatomy.labels import region_map
from lib.data.region_reports import (
    RegionInputs,
    build_prompt,
    build_target,
    encode_example,
    load_oriented,
    region_inputs,
    region_targets,
    shuffled,
)
from lib.data.studies import body_part_of, read_report, read_truth
from lib.networks.reg2rg import Reg2RG
from lib.trainers.common import read_stats, save_checkpoint_atomic, write_stats

logger = logging.getLogger(__name__)

REGIONS_TAG, ORGANS_TAG = "regions", "organs"


@dataclass
class RegionStudy:
    image_id: str
    inputs: RegionInputs  # regions with both a mask and a report, canonical order
    reports: dict[str, str]


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
    cfg = model.config
    if cfg.joint_regions or not cfg.uses_local:
        ids, labels, inputs = example(model, study, rng)
        return model(ids.to(device), labels.to(device), inputs.global_volume.to(device), inputs.crops.to(device), inputs.masks.to(device))
    inputs = study.inputs
    glb, reg = model.encode(inputs.global_volume.to(device), inputs.crops.to(device), inputs.masks.to(device))
    prompt = build_prompt(1, use_global=cfg.use_global)
    examples = []
    for j, name in enumerate(inputs.names):
        ids, labels = encode_example(model.tokenizer, prompt, build_target([name], study.reports))
        examples.append((ids.to(device), labels.to(device), reg[j : j + 1]))
    return model.forward_many(examples, glb)


class Reg2RGTrain(TrainTask):
    """Request keys (defaults in :meth:`config`): ``max_epochs``, ``learning_rate``, ``weight_decay``,
    ``warmup_steps``, ``val_split``, ``val_interval``, ``max_minutes`` (wall-clock budget; 0 = none),
    ``pretrained`` (start from the bundled weights), ``device``, ``seed``."""

    def __init__(
        self,
        model_dir: str,
        network: Reg2RG,
        publish_path: str,
        load_path: Optional[str] = None,
        description: str = "Train Reg2RG (region-guided report generation) on chest studies with reports",
        config: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__(description)
        self.model_dir = model_dir
        self._network = network
        self.publish_path = publish_path
        self.load_path = load_path
        self.stats_path = os.path.join(model_dir, "train_stats.json")
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
        }
        self._config.update(dict(config or {}))

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def stats(self) -> dict[str, Any]:
        return read_stats(self.stats_path)

    # ------------------------------------------------------------------ data
    def datalist(self, datastore: Datastore) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Usable chest studies ({image_id, image, label, label_kind, reports}) and {image_id: why not} for the rest."""
        entries, skipped = [], {}
        for image_id in sorted(datastore.list_images()):
            try:
                image = datastore.get_image_uri(image_id)
                studies_dir = os.path.dirname(image)
                if body_part_of(studies_dir, image_id) not in (None, "chest"):
                    skipped[image_id] = "other_body"
                    continue
                label, kind = None, None
                for tag in (REGIONS_TAG, ORGANS_TAG):
                    lid = datastore.get_label_by_image_id(image_id, tag)
                    if lid:
                        label, kind = datastore.get_label_uri(lid, tag), tag
                        break
                if label is None:
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
        lab = load_oriented(entry["label"]).astype(np.int32)
        if entry["label_kind"] == ORGANS_TAG:
            lab = region_map(lab)
        regions = [r for r in entry["reports"]]
        from lib.data.region_reports import REGION_NAMES

        inputs = region_inputs(img, lab, cfg.image_size, cfg.mask_size, regions=[r for r in REGION_NAMES if r in regions])
        if not inputs.names:
            return None
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

    # ------------------------------------------------------------------ run
    def __call__(self, request: Mapping[str, Any], datastore: Datastore) -> dict[str, Any]:
        req = {**self._config, **{k: v for k, v in dict(request or {}).items() if v is not None}}
        start = time.time()
        device = torch.device(req["device"] if (str(req["device"]) != "cuda" or torch.cuda.is_available()) else "cpu")
        max_epochs, val_interval = int(req["max_epochs"]), max(1, int(req["val_interval"]))
        budget = float(req.get("max_minutes") or 0) * 60.0
        rng = np.random.default_rng(int(req["seed"]))
        torch.manual_seed(int(req["seed"]))

        model = self._network
        entries, skipped = self.datalist(datastore)
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

        started_from = self._load_pretrained(model) if str(req["pretrained"]).lower() not in ("false", "0", "no") else None
        model.to(device).train()
        params = [p for p in model.parameters() if p.requires_grad]
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
            "key_metric_name": "val_loss",
        }
        best = math.inf
        epoch, out_of_time = 0, False
        for epoch in range(1, max_epochs + 1):
            losses = []
            for i in rng.permutation(len(train)):
                loss = study_loss(model, train[i], rng, device)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                losses.append(loss.detach().item())
                if budget and time.time() - start > budget:
                    out_of_time = True
                    break
            row = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None}
            if val and (epoch % val_interval == 0 or epoch == max_epochs or out_of_time):
                v = self.validate(model, val, device)
                row["val_loss"] = v
                if v is not None and v < best:
                    best = v
                    self._publish(model, epoch, -v)
                    stats.update(best_metric=v, best_metric_epoch=epoch)
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
