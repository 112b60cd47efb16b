"""``segdetexplain`` train task: Seg-det-explain (001) on the datastore's abdominal studies.

Samples are slices x objects (``lib.data.slice_grounding``) read from each study's image, its
``organs`` structure map and, when present, its ``final`` lesion label. A plain torch loop, as the
other VLM trainers: one step = one batch of two-round dialogues through :meth:`SegDetExplain.training_loss`
(eq. 7-10); AdamW with 001 §5.1's betas (0.9, 0.95) and no weight decay, gradient accumulation.
The weights with the lowest validation loss are published to ``publish_path`` as
``{"model": <SegDetExplain checkpoint>, "config", "epoch", "metric"}``; stats go to
``<model_dir>/train_stats.json``. :func:`fit` is the loop itself, shared with the scripts.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from monailabel.interfaces.datastore import Datastore

from lib.data.slice_grounding import SliceSample, volume_samples
from lib.data.studies import body_part_of
from lib.networks.segdetexplain import SegDetExplain, SegDetExplainConfig
from lib.networks.segdetexplain.batching import collate
from lib.trainers.common import PlainTrainTask, elapsed, save_checkpoint_atomic, truthy, write_stats

logger = logging.getLogger(__name__)

ORGANS_TAG, FINAL_TAG = "organs", "final"


def batches(samples: Sequence[SliceSample], size: int, rng: Optional[np.random.Generator]) -> list[list[SliceSample]]:
    order = rng.permutation(len(samples)) if rng is not None else np.arange(len(samples))
    return [[samples[i] for i in order[s : s + size]] for s in range(0, len(order), size)]


@torch.no_grad()
def validation_loss(model: SegDetExplain, samples: Sequence[SliceSample], batch_size: int) -> Optional[float]:
    if not samples:
        return None
    model.eval()
    losses = [float(model.training_loss(collate(b, model.cfg, model.tokenizer, model.processor))["loss"]) for b in batches(samples, batch_size, None)]
    model.train()
    return float(np.mean(losses))


def fit(
    model: SegDetExplain,
    train: Sequence[SliceSample],
    val: Sequence[SliceSample],
    epochs: int,
    batch_size: int = 8,
    lr: Optional[float] = None,
    seed: int = 0,
    max_minutes: float = 0.0,
    publish: Optional[Callable[[SegDetExplain, int, Optional[float]], None]] = None,
    on_epoch: Optional[Callable[[dict], None]] = None,
) -> dict[str, Any]:
    """Train ``model`` in place; ``publish`` gets the best weights (lowest validation loss, else the last)."""
    cfg = model.cfg
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr or cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    accum = max(1, int(cfg.grad_accum))
    start, best, best_epoch, history = time.time(), None, -1, []
    model.train()
    for epoch in range(1, epochs + 1):
        parts: dict[str, list[float]] = {}
        for step, b in enumerate(batches(train, batch_size, rng), start=1):
            out = model.training_loss(collate(b, cfg, model.tokenizer, model.processor))
            (out["loss"] / accum).backward()
            if step % accum == 0:
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
            for k, v in out.items():
                parts.setdefault(k, []).append(float(v.detach()))
        opt.zero_grad(set_to_none=True)
        val_loss = validation_loss(model, val, batch_size)
        row = {"epoch": epoch, **{f"train_{k}": float(np.mean(v)) for k, v in parts.items()}, "val_loss": val_loss, "elapsed": elapsed(start)}
        history.append(row)
        logger.info("segdetexplain epoch %d: %s", epoch, row)
        metric = val_loss if val_loss is not None else row["train_loss"]
        if best is None or metric < best:
            best, best_epoch = metric, epoch
            if publish is not None:
                publish(model, epoch, metric)
        if on_epoch is not None:
            on_epoch(row)
        if max_minutes and time.time() - start > max_minutes * 60.0:
            logger.info("segdetexplain: time budget of %.1f min reached after epoch %d", max_minutes, epoch)
            break
    return {"best_metric": best, "best_metric_epoch": best_epoch, "history": history, "total_time": elapsed(start), "n_train": len(train), "n_val": len(val)}


def checkpoint_dict(model: SegDetExplain, epoch: int, metric: Optional[float]) -> dict[str, Any]:
    return {"model": model.checkpoint(), "config": model.cfg.to_dict(), "epoch": int(epoch), "metric": metric}


def load_volume(path: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A volume in the project's array orientation (LPS) and its spacing."""
    from monai.transforms import Compose, EnsureChannelFirst, LoadImage, Orientation

    from lib.data.region_reports import ORIENTATION

    x = Compose([LoadImage(image_only=True), EnsureChannelFirst(), Orientation(**ORIENTATION)])(path)
    return np.asarray(x[0]), tuple(float(s) for s in x.pixdim[:3])


class SegDetExplainTrain(PlainTrainTask):
    """Request keys (defaults in :meth:`config`): ``max_epochs``, ``learning_rate``, ``batch_size``,
    ``val_split``, ``max_minutes`` (0 = none), ``pretrained`` (start from ``load_path``), ``seed``,
    ``negatives`` (absent-object slices per organ and study)."""

    def __init__(self, model_dir: str, cfg: SegDetExplainConfig, publish_path: str, load_path: Optional[str] = None, config: Optional[Mapping[str, Any]] = None):
        super().__init__("Train Seg-det-explain (segment, detect and explain a CT slice, with a closer look)")
        self.model_dir = model_dir
        self.cfg = cfg
        self.publish_path = publish_path
        self.load_path = load_path
        self.stats_path = os.path.join(model_dir, "train_stats.json")
        self._config: dict[str, Any] = {
            "max_epochs": 4,
            "learning_rate": 1e-3,
            "batch_size": 8,
            "val_split": 0.1,
            "max_minutes": 0,
            "pretrained": True,
            "seed": 0,
            "negatives": 1,
        }
        self._config.update(dict(config or {}))

    def datalist(self, datastore: Datastore) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Abdominal studies with an organ map: {image_id, image, organs, lesions (or None)}; {image_id: why not} for the rest."""
        entries, skipped = [], {}
        for image_id in sorted(datastore.list_images()):
            try:
                image = datastore.get_image_uri(image_id)
                if body_part_of(os.path.dirname(image), image_id) not in (None, "abdomen"):
                    skipped[image_id] = "other_body"
                    continue
                organs = datastore.get_label_by_image_id(image_id, ORGANS_TAG)
                if not organs:
                    skipped[image_id] = "no_organ_map"
                    continue
                final = datastore.get_label_by_image_id(image_id, FINAL_TAG)
                entries.append(
                    {
                        "image_id": image_id,
                        "image": image,
                        "organs": datastore.get_label_uri(organs, ORGANS_TAG),
                        "lesions": datastore.get_label_uri(final, FINAL_TAG) if final else None,
                    }
                )
            except Exception as e:  # one bad study must not end the run
                logger.warning("segdetexplain train: skipping %s: %s", image_id, e)
                skipped[image_id] = f"unreadable: {type(e).__name__}"
        return entries, skipped

    def samples(self, entry: Mapping[str, Any], negatives: int) -> list[SliceSample]:
        img, spacing = load_volume(entry["image"])
        organs, _ = load_volume(entry["organs"])
        lesions = load_volume(entry["lesions"])[0].astype(np.int32) if entry.get("lesions") else None
        return volume_samples(entry["image_id"], img.astype(np.float32), organs.astype(np.int32), spacing, lesions=lesions, negatives=negatives)

    def _initial_model(self, pretrained: bool, corpus: Sequence[str]) -> tuple[SegDetExplain, Optional[str]]:
        if pretrained and self.load_path and os.path.exists(self.load_path):
            try:
                ckpt = torch.load(self.load_path, map_location="cpu", weights_only=False)
                return SegDetExplain.from_checkpoint(ckpt["model"]), self.load_path
            except Exception as e:
                logger.warning("segdetexplain train: cannot start from %s (%s); building fresh weights", self.load_path, e)
        from lib.networks.vlm.tokenizer import project_corpus

        return SegDetExplain.build(self.cfg, corpus=project_corpus() + list(corpus)), None

    def __call__(self, request: Mapping[str, Any], datastore: Datastore) -> dict[str, Any]:
        req = {**self._config, **{k: v for k, v in dict(request or {}).items() if v is not None}}
        entries, skipped = self.datalist(datastore)
        rng = np.random.default_rng(int(req["seed"]))
        samples_by_study = []
        for e in entries:
            try:
                samples_by_study.append(self.samples(e, int(req["negatives"])))
            except Exception as ex:
                logger.warning("segdetexplain train: skipping %s: %s", e["image_id"], ex)
                skipped[e["image_id"]] = f"unreadable: {type(ex).__name__}"
        samples_by_study = [s for s in samples_by_study if s]
        if not samples_by_study:
            raise ValueError(f"no abdominal study with an organ map to train on (skipped: {skipped})")
        order = rng.permutation(len(samples_by_study))
        n_val = int(round(float(req["val_split"]) * len(order))) if len(order) > 1 else 0
        val = [x for i in order[:n_val] for x in samples_by_study[i]]  # split by study: no slice of a val study trains
        train = [x for i in order[n_val:] for x in samples_by_study[i]]
        corpus = sorted({t for x in train for t in (x.question, x.answer, x.closer_question)})
        model, started_from = self._initial_model(truthy(req["pretrained"]), corpus)
        stats: dict[str, Any] = {"started_from": started_from, "skipped": skipped, "n_studies": len(samples_by_study), "epochs": []}

        def publish(m, epoch, metric):
            save_checkpoint_atomic(checkpoint_dict(m, epoch, metric), self.publish_path)

        def on_epoch(row):
            stats["epochs"].append(row)
            write_stats(stats, self.stats_path)

        out = fit(
            model, train, val, int(req["max_epochs"]), int(req["batch_size"]), float(req["learning_rate"]), int(req["seed"]), float(req["max_minutes"] or 0), publish, on_epoch
        )
        stats.update({k: v for k, v in out.items() if k != "history"})
        write_stats(stats, self.stats_path)
        return stats
