"""TaskConfig for ``reg2rg`` (004): region-guided CT report generation, infer + train task.

Sizes: ``tiny`` (CPU) and ``paper`` (GPU), ``--conf reg2rg_variant``. The language model is the
small LLaMA trained on the synthetic reports, whose tokenizer ships as
``model/reg2rg_tokenizer.json`` (``scripts/train_reg2rg_lm.py``); ``--conf reg2rg_llm DIR`` uses
any local LLaMA/Qwen folder instead (its tokenizer, LoRA on top; nothing is downloaded; a
checkpoint then holds only the adapters and visual modules). ``--conf reg2rg_features`` picks
the visual features of Table 5 (default ``txt,geo,glb``; ``glb`` is the "GLB only" ablation).
Region masks come from the ``anatomy`` task (same weights, same per-image cache); the train task
uses that task's maps too (``region_masks: anatomy``, cached per study) or the studies' own
region labels (``region_masks: truth``).
"""
from __future__ import annotations

import logging
import os
from typing import Any

from monailabel.interfaces.config import TaskConfig

from lib.configs.anatomy import anatomy_infer_task
from lib.configs.variants import BUNDLED_MODEL_DIR, bundled_checkpoint, select_variant
from lib.networks.reg2rg import Reg2RG, Reg2RGConfig

logger = logging.getLogger(__name__)

VARIANTS: dict[str, dict[str, Any]] = {"tiny": {"config": "tiny"}, "paper": {"config": "paper"}}
TOKENIZER_FILE = os.path.join(BUNDLED_MODEL_DIR, "reg2rg_tokenizer.json")


def feature_flags(spec: str | None) -> dict[str, bool]:
    """'txt,geo,glb' -> the use_* switches of Reg2RGConfig."""
    parts = {p.strip().lower() for p in (spec or "txt,geo,glb").split(",") if p.strip()}
    unknown = parts - {"txt", "geo", "glb"}
    if unknown or not parts:
        raise ValueError(f"reg2rg_features: use a comma list of txt, geo, glb (got {spec!r})")
    return {"use_texture": "txt" in parts, "use_geometry": "geo" in parts, "use_global": "glb" in parts}


def features_suffix(spec: str | None) -> str:
    """'' for the full model, else e.g. '_glb': an ablation never overwrites the full model's checkpoint."""
    flags = feature_flags(spec)
    if all(flags.values()):
        return ""
    return "_" + "_".join(tag for tag, key in (("txt", "use_texture"), ("geo", "use_geometry"), ("glb", "use_global")) if flags[key])


def build_network(variant: str, conf: dict[str, str]) -> Reg2RG:
    """The Reg2RG network of ``variant`` with its tokenizer (the shipped file, or the LLM folder's)."""
    from lib.networks.reg2rg.tokenizer import load_pretrained_tokenizer, load_tokenizer_file

    llm = conf.get("reg2rg_llm") or None
    kw = dict(feature_flags(conf.get("reg2rg_features")), lm_path=llm)
    flag = str(conf.get("reg2rg_histogram_token") or "").strip().lower()
    if flag:  # default: the variant's (tiny on, paper off); a checkpoint is served as it was trained (strict load)
        if flag not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"reg2rg_histogram_token: true or false (got {flag!r})")
        kw["histogram_token"] = flag in ("1", "true", "yes", "on")
    cfg = Reg2RGConfig.tiny(**kw) if variant == "tiny" else Reg2RGConfig.paper(**kw)
    if llm:
        tokenizer = load_pretrained_tokenizer(llm, cfg.max_regions)
    else:
        if variant != "tiny":
            logger.warning("reg2rg paper variant without --conf reg2rg_llm DIR: using the small LM trained here")
        path = conf.get("reg2rg_tokenizer") or TOKENIZER_FILE
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no Reg2RG tokenizer at {path} (scripts/train_reg2rg.py lm builds it)")
        tokenizer = load_tokenizer_file(path, cfg.max_regions)
    return Reg2RG(cfg, tokenizer)


class Reg2rg(TaskConfig):
    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        conf = conf or {}
        self.variant, self.settings = select_variant(name, VARIANTS, conf)
        suffix = ("" if self.variant == "tiny" else f"_{self.variant}") + features_suffix(conf.get("reg2rg_features"))
        self.path = [bundled_checkpoint(f"{name}{suffix}.pt"), os.path.join(model_dir, f"{name}{suffix}.pt")]
        try:
            self.network = build_network(self.variant, conf)
        except (OSError, ValueError) as e:  # no tokenizer / LLM folder: the task is not offered
            logger.warning("reg2rg unavailable: %s", e)
            self.network = None

    def infer(self):
        if self.network is None:
            return {}
        from lib.infers.reg2rg import Reg2RGInfer

        anatomy_task = anatomy_infer_task(self.model_dir, self.conf)  # the app's own, shared
        return {self.name: Reg2RGInfer(path=self.path, network=self.network, anatomy_task=anatomy_task, load_strict=not self.network.config.lm_path)}

    def trainer(self):
        if self.network is None:
            return None
        from lib.trainers.reg2rg import Reg2RGTrain

        model_dir, conf = self.model_dir, self.conf
        return Reg2RGTrain(
            model_dir=os.path.join(self.model_dir, self.name),
            network=self.network,
            publish_path=self.path[1],
            load_path=self.path[0],
            anatomy_task=lambda: anatomy_infer_task(model_dir, conf),  # built on the first study that misses the mask cache
        )
