"""``medvolr1`` train task: stage ``sft`` (cold start, §2.4) or ``grpo`` (§2.5), chosen per request.

Data: every datastore study with a structure map (``labels/organs``) gives its implicit queries
(:mod:`lib.data.queries`; training phrasings only, the first phrasing of each list is held out),
lesion queries using ``truth/<id>_lesions`` where present. A share (``val_split``) of the studies
validates: DSC / IoU of greedy answers on the slice sequence, written to ``train_stats.json``.

* ``sft``: starts from the published/bundled policy when ``pretrained`` (default true) and one
  exists, else from a fresh VLM; trains the propagator first when none exists yet (or
  ``train_propagator`` is true); Top-K targets are redrawn every epoch.
* ``grpo``: needs an SFT'd policy (published or bundled; 002 Table 2(a): RL without SFT does not
  converge); ``reward_without`` (comma list of f, a, s, c) zeroes reward terms (the ablations);
  ``grpo_steps`` updates of ``queries_per_step`` groups of ``group_size`` samples; ``lora_only``
  (default true) trains the LoRA adapters only; ``temperature`` is the rollouts' sampling
  temperature (the variant's default).

Both publish ``{"policy", "propagator", ..., "stage"}`` to ``publish_path`` (atomically) at the end,
and stop early (publishing what they have) at ``max_minutes``.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch
from monailabel.interfaces.datastore import Datastore

from lib.networks.medvolr1.checkpoint import load_system_file, system_checkpoint
from lib.networks.medvolr1.evaluation import evaluate_items, summarise
from lib.networks.medvolr1.policy import MedVolPolicy
from lib.networks.medvolr1.propagator import PropagatorConfig, SlicePropagator
from lib.networks.medvolr1.propagator_train import train_propagator
from lib.networks.medvolr1.samples import items_from_datastore
from lib.networks.medvolr1.training import GRPOSettings, SFTSettings, train_grpo, train_sft
from lib.trainers.common import PlainTrainTask, save_checkpoint_atomic, truthy, write_stats

logger = logging.getLogger(__name__)

STAGES = ("sft", "grpo")
REWARD_TERMS = ("f", "a", "s", "c")


def reward_weights(without: Any) -> dict[str, float]:
    parts = [p.strip().lower().removeprefix("r_") for p in str(without or "").split(",") if p.strip()]
    bad = [p for p in parts if p not in REWARD_TERMS]
    if bad:
        raise ValueError(f"reward_without: use a comma list of {REWARD_TERMS}, got {bad}")
    return {k: (0.0 if k in parts else 1.0) for k in REWARD_TERMS}


class MedVolR1Train(PlainTrainTask):
    def __init__(self, model_dir: str, settings: Mapping[str, Any], vlm_config: Callable, publish_path: str, load_path: Optional[str] = None, config: Optional[Mapping[str, Any]] = None):
        super().__init__("Train MedVol-R1: stage sft (cold start) or grpo (rewards R_f, R_a, R_s, R_c)")
        self.model_dir, self.settings, self.vlm_config = model_dir, dict(settings), vlm_config
        self.publish_path, self.load_path = publish_path, load_path
        self.stats_path = os.path.join(model_dir, "train_stats.json")
        s = self.settings
        self._config: dict[str, Any] = {
            "stage": "sft",
            "sft_epochs": 8,
            "grpo_steps": 40,
            "learning_rate": None,  # default: the variant's SFT / GRPO rate
            "group_size": s["group_size"],
            "queries_per_step": s.get("queries_per_step", 1),
            "lora_only": s.get("grpo_lora_only", True),
            "beta": s["beta"],
            "temperature": s.get("grpo_temperature", 1.0),
            "delta": s["delta"],
            "reward_without": "",
            "topk": 3,
            "propagator_epochs": 20,
            "train_propagator": False,
            "pretrained": True,
            "val_split": 0.15,
            "max_minutes": 0,
            "seed": 0,
        }
        self._config.update(dict(config or {}))

    def start_from(self) -> Optional[str]:
        for p in (self.publish_path, self.load_path):
            if p and os.path.isfile(p):
                return p
        return None

    def items(self, datastore: Datastore, seed: int):
        out, skipped = {}, {}
        for image_id in sorted(datastore.list_images()):
            try:
                studies_dir = os.path.dirname(datastore.get_image_uri(image_id))
                its = items_from_datastore(studies_dir, image_id, self.settings["n_slices"], self.settings["image_size"], seed=seed, phrasing="train")
            except Exception as e:  # one bad study must not end the run
                logger.warning("MedVol-R1 train: skipping %s: %s", image_id, e)
                skipped[image_id] = f"unreadable: {type(e).__name__}"
                continue
            if its:
                out[image_id] = its
            else:
                skipped[image_id] = "no_structure_map_or_queries"
        return out, skipped

    def __call__(self, request: Mapping[str, Any], datastore: Datastore) -> dict[str, Any]:
        req = {**self._config, **{k: v for k, v in dict(request or {}).items() if v is not None}}
        stage = str(req["stage"]).lower()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {req['stage']!r}")
        weights = reward_weights(req["reward_without"])
        seed, start = int(req["seed"]), time.time()
        budget = float(req.get("max_minutes") or 0) * 60.0
        should_stop = (lambda: time.time() - start > budget) if budget > 0 else (lambda: False)
        torch.manual_seed(seed)

        by_study, skipped = self.items(datastore, seed)
        if not by_study:
            raise ValueError(f"no study with a structure map to build queries from ({len(skipped)} skipped)")
        ids = sorted(by_study)
        order = np.random.default_rng(seed).permutation(len(ids))
        n_val = int(round(len(ids) * float(req["val_split"]))) if len(ids) > 2 else 0
        val = [it for i in order[:n_val] for it in by_study[ids[i]]]
        train = [it for i in order[n_val:] for it in by_study[ids[i]]]

        src = self.start_from() if truthy(req["pretrained"]) else None
        if src:
            policy, propagator, _ = load_system_file(src)
        elif stage == "grpo":
            raise ValueError("GRPO needs an SFT'd policy: run stage sft first (RL from scratch does not converge, 002 Table 2(a))")
        else:
            policy = MedVolPolicy.build(self.vlm_config(), self.settings["n_slices"])
            propagator = SlicePropagator(PropagatorConfig.tiny() if self.settings["propagator"] == "tiny" else PropagatorConfig.paper())
        stats: dict[str, Any] = {"stage": stage, "started_from": src, "n_train_queries": len(train), "n_val_queries": len(val), "skipped": skipped}
        if src is None or truthy(req["train_propagator"]):
            stats["propagator_loss"] = train_propagator(propagator, train, epochs=int(req["propagator_epochs"]), seed=seed)
        if stage == "sft":
            lr = float(req["learning_rate"] or self.settings["sft_lr"])
            stats["sft_loss"] = train_sft(policy, train, SFTSettings(epochs=int(req["sft_epochs"]), lr=lr, topk=int(req["topk"]), seed=seed), should_stop)
        else:
            lr = float(req["learning_rate"] or self.settings["grpo_lr"])
            gs = GRPOSettings(steps=int(req["grpo_steps"]), group_size=int(req["group_size"]), queries_per_step=int(req["queries_per_step"]), lora_only=truthy(req["lora_only"]), lr=lr, beta=float(req["beta"]), temperature=float(req["temperature"]), delta=int(req["delta"]), weights=weights, seed=seed)
            stats["grpo"] = train_grpo(policy, propagator, train, gs, should_stop)
            stats["reward_weights"] = weights
        if val:
            stats["validation"] = summarise(evaluate_items(policy, propagator, val))
        save_checkpoint_atomic(system_checkpoint(policy, propagator, self.settings, stage, {"stage": stage, "weights": weights}), self.publish_path)
        stats.update(publish_path=self.publish_path, total_seconds=round(time.time() - start, 1))
        write_stats(stats, self.stats_path)
        logger.info("MedVol-R1 %s done in %.0f s; published %s", stage, stats["total_seconds"], self.publish_path)
        return stats
