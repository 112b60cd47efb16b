"""TaskConfig for ``medvolr1`` (002): a free-form query -> key slice + 2D boxes -> 3D mask.

Sizes (``--conf medvolr1_variant`` or ``--conf variant``):

* ``tiny`` (CPU): 16 axial slices of 64 x 64 px (16 visual tokens each) into the shared tiny
  Qwen2.5-VL-class VLM (:mod:`lib.networks.vlm`), the small UNet propagator, Δ = 2 sequence slices
  for R_c: the paper's Δ = 5 of 64 slices is a window of 11/64 of the volume; with 16 slices Δ = 5
  would span 11/16 of it, Δ = 2 (5/16) is the nearest window that still reaches past the
  neighbours (a train request may set ``delta``); GRPO trains the LoRA adapters only (the paper's
  RL stage is LoRA; SFT of the tiny model also trains its base) at lr 1e-3: updating the whole
  tiny model at 2e-4 lost 6 DSC points on held-out queries (README); each update averages 4
  queries' groups (the paper's batch spans GPUs); 320 updates (~3 epochs, §3.1.3) by the train
  script; rollouts sample at temperature 1.0 (TRL's default): 0.5 brought the samples close to the
  greedy answer but lost held-out accuracy (README);
* ``paper`` (GPU): 64 slices of 256 px (the VLM's ``image_size`` set to 256), Δ = 5, G = 4,
  β = 0.01, SFT lr 2e-5 and GRPO lr 2e-6 (§3.1.3), sampling temperature 1.0 (TRL's default; the
  paper gives none); ``--conf medvolr1_vlm DIR`` loads a local
  Qwen2.5-VL folder (LoRA only; the paper's Qwen3-VL-4B needs the same folder layout).

The checkpoint (``pretrained_medvolr1.pt`` bundled, ``<model_dir>/medvolr1.pt`` published) holds
the policy (VLM + tokenizer + sizes) and the propagator's weights.

Propagation at inference: MedSAM2 when ``--conf medvolr1_medsam2 CKPT`` names an existing file and
``sam2`` imports (optional ``medvolr1_medsam2_config``, ``_image_size``, ``_frames``, ``_device``;
see :mod:`lib.networks.medvolr1.medsam2`); otherwise the checkpoint's slice propagator.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from monailabel.interfaces.config import TaskConfig

from lib.configs.variants import bundled_checkpoint, select_variant

logger = logging.getLogger(__name__)

VARIANTS: dict[str, dict[str, Any]] = {
    "tiny": {"n_slices": 16, "image_size": 64, "delta": 2, "propagator": "tiny", "sft_lr": 2e-3, "grpo_lr": 1e-3, "grpo_lora_only": True, "group_size": 4, "queries_per_step": 4, "beta": 0.01, "grpo_temperature": 1.0},
    "paper": {"n_slices": 64, "image_size": 256, "delta": 5, "propagator": "paper", "sft_lr": 2e-5, "grpo_lr": 2e-6, "grpo_lora_only": True, "group_size": 4, "queries_per_step": 1, "beta": 0.01, "grpo_temperature": 1.0},
}


def vlm_config(settings: dict[str, Any], conf: dict[str, str]):
    from lib.networks.vlm import VLMConfig

    path = (conf or {}).get("medvolr1_vlm")
    if path:
        return VLMConfig.paper(vlm_path=path, image_size=settings["image_size"])
    return VLMConfig.tiny(image_size=settings["image_size"])


def propagator_choice(conf: dict[str, str]):
    """MedSAM2 (``--conf medvolr1_medsam2 CKPT``) when ``sam2`` imports and the file exists; else the
    project's slice propagator. The reason is logged here and reported with every answer."""
    from lib.networks.medvolr1.medsam2 import CONF_CHECKPOINT, MEDSAM2, choose_propagator

    choice = choose_propagator(conf)
    if choice.name == MEDSAM2:
        logger.info("medvolr1 propagator: MedSAM2 (%s)", choice.reason)
    elif (conf or {}).get(CONF_CHECKPOINT):
        logger.warning("MedSAM2 requested but unavailable: %s", choice.reason)
    else:
        logger.info("medvolr1 propagator: %s", choice.reason)
    return choice


class Medvolr1(TaskConfig):
    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        conf = conf or {}
        self.variant, self.settings = select_variant(name, VARIANTS, conf)
        suffix = "" if self.variant == "tiny" else f"_{self.variant}"
        self.path = [bundled_checkpoint(f"{name}{suffix}.pt"), os.path.join(model_dir, f"{name}{suffix}.pt")]
        self.propagator = propagator_choice(conf)

    def infer(self):
        from lib.infers.medvolr1 import MedVolR1Infer

        return {self.name: MedVolR1Infer(path=self.path, propagator=self.propagator)}

    def trainer(self):
        from lib.trainers.medvolr1 import MedVolR1Train

        return MedVolR1Train(
            model_dir=os.path.join(self.model_dir, self.name),
            settings=self.settings,
            vlm_config=lambda: vlm_config(self.settings, self.conf),
            publish_path=self.path[1],
            load_path=self.path[0],
        )
