"""Ground one study with the ``gleve`` infer task, plainly and under test-time augmentation (TTA).

Why TTA and not MC dropout: GLeVE's tiny network has no dropout layer (batch-norm UNet), and
adding one would change the model another task trains. TTA needs no change: the same weights see
the study mirrored left-right (with its organ maps, so the anatomical prior moves with it) or with
its windowed intensities slightly rescaled, and the per-lesion masks are mapped back and compared
with the plain pass. A lesion the model grounds the same way under every view is one it is sure of.

The infer task's own pre-processing (anatomy prior, resampling, windowing, padding) runs once per
study and its own ``run_inferer`` runs every pass, so scoring sees exactly what ``/infer/gleve``
would answer (at the task's spacing: volumes here are measured there, not on the input grid).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
from monai.transforms import Compose
from scipy import ndimage

from lib.activelearning.signals import dice
from lib.anatomy.labels import ANATOMY_STRUCTURES
from lib.networks.gleve.report_graph import build_lesion_graph, organ_prior_channels
from lib.reports.schema import ParsedReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class View:
    """One test-time view: mirror axes (of the task's LPS grid) and an intensity change
    ``x * scale + shift`` of the windowed image (the HU image used for measurements is untouched)."""

    name: str
    flip_axes: tuple[int, ...] = ()
    scale: float = 1.0
    shift: float = 0.0


#: Left-right mirror (the abdomen's axis of near-symmetry) and a +-5 % contrast / brightness change.
DEFAULT_VIEWS: tuple[View, ...] = (
    View("flip_lr", flip_axes=(0,)),
    View("contrast_up", scale=1.05, shift=-0.02),
    View("flip_ap", flip_axes=(1,)),
    View("contrast_down", scale=0.95, shift=0.02),
)


def views(n: int) -> tuple[View, ...]:
    """The first ``n`` of :data:`DEFAULT_VIEWS` (0: no TTA)."""
    if not 0 <= int(n) <= len(DEFAULT_VIEWS):
        raise ValueError(f"tta must be between 0 and {len(DEFAULT_VIEWS)}, got {n}")
    return DEFAULT_VIEWS[: int(n)]


def _apply(view: View, data: dict[str, Any]) -> dict[str, Any]:
    d = dict(data)
    dims = tuple(a + 1 for a in view.flip_axes)  # channel first
    for key in ("image", "organs", "hu"):
        if dims:
            d[key] = torch.flip(d[key], dims)
    if view.scale != 1.0 or view.shift != 0.0:
        d["image"] = d["image"] * view.scale + view.shift
    return d


def _label_map(pred: torch.Tensor, view: Optional[View] = None) -> np.ndarray:
    """(N+1, X, Y, Z) answer of ``run_inferer`` (channel 0 = threshold) -> label map, un-mirrored."""
    p = pred.as_tensor() if hasattr(pred, "as_tensor") else torch.as_tensor(pred)
    if view is not None and view.flip_axes:
        p = torch.flip(p, tuple(a + 1 for a in view.flip_axes))
    return p.detach().cpu().argmax(0).numpy()


def _probs(pred: torch.Tensor, view: Optional[View] = None) -> np.ndarray:
    p = pred.as_tensor() if hasattr(pred, "as_tensor") else torch.as_tensor(pred)
    if view is not None and view.flip_axes:
        p = torch.flip(p, tuple(a + 1 for a in view.flip_axes))
    return p.detach().cpu()[1:].float().numpy()


def preprocess(task, image: str, parsed: ParsedReport, device: str = "cpu", threshold: float = 0.5) -> dict[str, Any]:
    """The infer task's pre-transforms on one study (anatomy prior included)."""
    data = {"image": image, "device": device, "parsed_report": parsed.model_dump(), "threshold": threshold}
    return Compose(task.pre_transforms(data))(data)


def ground_study(task, image: str, parsed: ParsedReport, device: str = "cpu", tta: Sequence[View] = DEFAULT_VIEWS[:2], threshold: float = 0.5) -> list[dict[str, Any]]:
    """Per lesion description of ``parsed``: the infer task's record (candidate entropy,
    verification score, reported volume and HU, reason) plus, at the task's spacing,
    ``grounded``, ``measured_volume_ml``, ``grounded_count`` (connected components),
    ``reported_count``, ``reported_hu_interval`` and, with TTA, ``tta_dice`` per view,
    ``tta_disagreement`` (1 - their mean) and ``tta_variance`` (voxel variance of the lesion's
    probability over all passes, mean over the voxels any pass called lesion)."""
    units = parsed.findings
    if not units:
        return []
    data = preprocess(task, image, parsed, device, threshold)
    base = task.run_inferer(dict(data), device=device)
    label = _label_map(base[task.output_label_key])
    probs = [_probs(base[task.output_label_key])]
    view_labels = []
    for view in tta:
        out = task.run_inferer(_apply(view, data), device=device)
        view_labels.append((view, _label_map(out[task.output_label_key], view)))
        probs.append(_probs(out[task.output_label_key], view))
    stack = np.stack(probs)  # (passes, N, X, Y, Z)

    spacing = tuple(float(s) for s in task.target_spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    organs = data["organs"][0].cpu().numpy().round().astype(np.int32)
    hu = data["hu"][0].cpu().numpy()
    organ_names = task.network.config.organ_names
    targets = build_lesion_graph(parsed).lesions
    records = []
    for rec, target in zip(base["gleve_lesions"], targets):
        i = int(rec["index"])
        mask = label == i + 1
        grounded = "reason" not in rec and bool(mask.any())
        ids = [ANATOMY_STRUCTURES[organ_names[c]] for c in organ_prior_channels(target.organ, organ_names) if organ_names[c] in ANATOMY_STRUCTURES]
        organ = np.isin(organs, ids) if ids else None
        organ_hu = float(hu[organ].mean()) if organ is not None and organ.any() else None
        interval = target.hu_interval(organ_hu)
        r = dict(rec)
        r.update(
            grounded=grounded,
            measured_volume_ml=round(float(mask.sum()) * voxel_ml, 3) if grounded else 0.0,
            grounded_count=int(ndimage.label(mask, structure=np.ones((3, 3, 3)))[1]) if grounded else 0,
            reported_count=max(1, int(getattr(target, "count", 1) or 1)),
            reported_hu_interval=[float(v) for v in interval] if interval is not None else None,
            organ_mean_hu=None if organ_hu is None else round(organ_hu, 1),
        )
        if tta:
            dices = {v.name: dice(mask, lab == i + 1) for v, lab in view_labels}
            union = (stack[:, i] > threshold).any(0)
            r["tta_dice"] = {k: round(d, 4) for k, d in dices.items()}
            r["tta_disagreement"] = round(1.0 - float(np.mean(list(dices.values()))), 4)
            r["tta_variance"] = round(float(stack[:, i][:, union].var(0).mean()), 6) if union.any() else 0.0
        records.append(r)
    return records
