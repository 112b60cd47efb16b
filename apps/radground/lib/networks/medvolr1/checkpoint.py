"""One checkpoint file for the whole MedVol-R1 system: policy + propagator + sizes + history."""
from __future__ import annotations

from typing import Any, Optional

import torch

from .policy import MedVolPolicy
from .propagator import PropagatorConfig, SlicePropagator


def system_checkpoint(policy: MedVolPolicy, propagator: SlicePropagator, settings: dict, stage: str, history: Optional[dict] = None) -> dict[str, Any]:
    return {
        "policy": policy.checkpoint(),
        "propagator": {k: v.detach().cpu().clone() for k, v in propagator.state_dict().items()},
        "propagator_config": propagator.config.to_dict(),
        "settings": dict(settings),
        "stage": stage,
        "history": history or {},
    }


def load_system(ckpt: dict[str, Any]) -> tuple[MedVolPolicy, SlicePropagator, dict]:
    policy = MedVolPolicy.from_checkpoint(ckpt["policy"])
    prop = SlicePropagator(PropagatorConfig(**ckpt["propagator_config"]))
    prop.load_state_dict(ckpt["propagator"])
    policy.model.eval()
    prop.eval()
    return policy, prop, ckpt


def load_system_file(path: str):
    return load_system(torch.load(path, map_location="cpu", weights_only=False))
