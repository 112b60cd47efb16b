"""MedGrounder's train task, both stages of 003 §3.4 (request ``stage``: 1 / 2).

* **stage 1** (pre-training, weak anatomy boxes): every study with a report; each parsed sentence
  gets the boxes of its most specific anatomy on the study's structure map, cleaned up by the
  paper's rules (:func:`lib.data.grounding_targets.anatomy_targets`); ``phrases_per_study``
  short side/zone phrases per study add the wording variety Chest ImaGenome has and the synthetic
  reports lack (:func:`~lib.data.grounding_targets.anatomy_phrases`; a pool of ``phrase_pool`` per
  study, ``phrases_per_study`` of them drawn afresh each step). The structure map is the
  anatomy task's (``weak_boxes_from="anatomy"``, default; cached per image) or the datastore's
  ``organs`` label (``"labels"``).
* **stage 2** (fine-tuning, finding boxes): studies whose truth links sentences to finding
  instances; boxes from the ``final`` label (else the truth's instance map)
  (:func:`~lib.data.grounding_targets.finding_targets`). Starts from the latest published weights
  (``pretrained``), i.e. stage 1's.

Stage 2 takes every groundable sentence of a study and at most ``ZERO_BOX_FRACTION[2]`` = 40 %
zero-box ones (PadChest-GR's share; uncapped, the reports' three quarters of zero-box sentences
taught stage 2 to abstain), and validates on the same mix.

Stage 2 also rehearses stage 1 (``stage1_replay_fraction``, default ``STAGE1_REPLAY_FRACTION`` =
25 % of each step's sentences): stage-1 side/zone phrases with their anatomy boxes, drawn from a
per-study pool made on the study's structure map, restricted to the finding nouns no groundable
stage-2 sentence uses (:func:`~lib.data.grounding_targets.supervised_phrase_nouns`). Why: the paper
trains one model on both stages' phrase types; the synthetic reports never say e.g. "Bilateral
lower lobe opacities.", so without rehearsal fine-tuning overwrites what stage 1 learnt for such
sentences (they came back as finding-sized boxes). Nouns stage 2 does ground are left out, since
their anatomy answer would contradict the finding boxes. A study without a structure map trains
without replay; validation (the checkpoint criterion) scores the report sentences only, the
replayed phrases are reported beside it (``val_replay_*``).

The loss is eqs. 2-4 (:class:`~lib.networks.medgrounder.losses.GroundingLoss`); AdamW as the
paper (its lr 1e-5 is for batch 32 on a GPU; the CPU default is larger). Validation picks the
confidence threshold that maximises centre-hit F1 (§5.3.2) and scores the §3.5 metrics at it; the
key metric is mask IoU in stage 1 and Precision@(F1=1) in stage 2, as the paper selects its
checkpoints (§4.0.2). The published checkpoint carries the stage and the chosen threshold.

Why a plain torch loop: a step pairs one image with a variable number of sentences, each with a
variable number of boxes (0..M), which MONAI's SupervisedTrainer / collation do not express; the
``train_stats.json`` / ``publish_path`` contract is the one MONAI Label and the app read.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from monai.transforms import Compose
from monailabel.interfaces.datastore import Datastore

from lib.data.grounding_targets import AnatomyBoxes, SentenceTarget, anatomy_phrases, anatomy_targets, finding_targets, supervised_phrase_nouns
from lib.data.studies import body_part_of, read_report, read_truth, truth_lesions_path
from lib.metrics.grounding import score_sentence, summarise
from lib.networks.medgrounder import GroundingLoss, MedGrounder, boxes_to_corners, scored_corner_boxes, select_boxes
from lib.networks.medgrounder.preprocess import CT_WINDOWS, ModelGrid, prepare_image
from lib.reports import parse_report
from lib.trainers.common import PlainTrainTask, elapsed, jsonable, save_checkpoint_atomic, truthy, write_stats
from lib.transforms.ct import load_ct

logger = logging.getLogger(__name__)

THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))
KEY_METRIC = {1: "val_mIoU", 2: "val_P@F1=1"}
#: Most zero-box sentences a stage may see, as a share of its sentences. Stage 1 keeps the report's
#: mix (Chest ImaGenome is full of zero-box sentences); stage 2 matches the expert sets the paper
#: fine-tunes on: PadChest-GR has 41 % zero-box phrases, MS-CXR none (003 Table 1). Reports here
#: are three quarters zero-box, so uncapped they would teach stage 2 mostly to abstain.
ZERO_BOX_FRACTION = {1: 1.0, 2: 0.4}
#: Share of each stage-2 step's sentences that rehearse stage-1 anatomy phrases (see the module docstring).
STAGE1_REPLAY_FRACTION = 0.25
VAL_PHRASES = 8


@dataclass
class GroundingStudy:
    """One pre-processed study: the model input, its grid and its sentences' normalised targets."""

    image_id: str
    image: torch.Tensor  # (C, S, S, S)
    grid: ModelGrid
    texts: list[str]
    targets: list[torch.Tensor]  # per sentence (M, 2nd) normalised centre-size
    source_boxes: list[np.ndarray]  # per sentence (M, 2nd) source voxel corner boxes (for reporting)
    n_report: int = -1  # the first n_report texts are the report's sentences, the rest stage-1 phrases (stage 2: replayed)

    def __post_init__(self):
        if self.n_report < 0:
            self.n_report = len(self.texts)


def stage1_replay_fraction(req: Mapping[str, Any], stage: int) -> float:
    """The share of replayed stage-1 phrases per step: 0 in stage 1 (it has its own phrases), the
    request's ``stage1_replay_fraction`` (default STAGE1_REPLAY_FRACTION) in stage 2."""
    if stage != 2:
        return 0.0
    v = req.get("stage1_replay_fraction")
    try:
        f = STAGE1_REPLAY_FRACTION if v in (None, "") else float(v)
    except (TypeError, ValueError):
        raise ValueError(f"stage1_replay_fraction must be a number in [0, 1), got {v!r}") from None
    if not 0.0 <= f < 1.0:
        raise ValueError(f"stage1_replay_fraction must be in [0, 1), got {v!r}")
    return f


def parse_stage(v: Any) -> int:
    s = str(v).strip().lower()
    if s in ("1", "pretrain", "pre-train", "stage1", "anatomy"):
        return 1
    if s in ("2", "finetune", "fine-tune", "stage2", "findings"):
        return 2
    raise ValueError(f"stage must be 1 (anatomy pre-training) or 2 (finding fine-tuning), got {v!r}")


def choose_threshold(per_sentence: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], shape, wbf: bool = False) -> tuple[float, dict]:
    """The confidence threshold with the best overall centre-hit F1 (§5.3.2) and the §3.5 metrics at it.

    ``per_sentence``: (corners (N, 2nd) normalised, scores (N,), true corners (M, 2nd) normalised);
    ``shape``: the grid mask IoU is measured on."""
    best_t, best_ch = float(THRESHOLDS[0]), None
    for t in THRESHOLDS:
        ch = evaluate(per_sentence, shape, float(t), wbf, with_mask=False)["overall"]["CH-F1"]
        ch = -1.0 if ch != ch else ch
        if best_ch is None or ch > best_ch:
            best_t, best_ch = float(t), ch
    return best_t, evaluate(per_sentence, shape, best_t, wbf)


def evaluate(per_sentence, shape, threshold: float, wbf: bool = False, with_mask: bool = True) -> dict:
    """§3.5 metrics of normalised predictions at ``threshold`` (optionally after WBF), boxes scaled to ``shape``."""
    scores = []
    scale = np.asarray(list(shape) * 2, float)
    for corners, conf, true in per_sentence:
        kept, _ = select_boxes(corners, conf, threshold, wbf=wbf)
        scores.append(score_sentence(kept * scale, np.asarray(true) * scale, shape, with_mask=with_mask))
    return summarise(scores)


class MedGrounderTrain(PlainTrainTask):
    """Train MedGrounder (stage 1 or 2) on the datastore's studies; see the module docstring.

    Request keys (defaults in :meth:`config`): ``stage``, ``max_epochs``, ``learning_rate`` (``lr``),
    ``weight_decay``, ``val_split``, ``val_interval``, ``device``, ``pretrained``, ``seed``,
    ``studies_per_step``, ``max_sentences``, ``phrases_per_study``, ``weak_boxes_from``, ``body``,
    ``zero_box_fraction`` (most zero-box sentences per step, share; default per stage, ZERO_BOX_FRACTION),
    ``stage1_replay_fraction`` (stage 2: share of each step's sentences that are replayed stage-1
    anatomy phrases; default STAGE1_REPLAY_FRACTION, 0 turns rehearsal off).
    """

    task_name = "medgrounder"  # the train_stats name

    def __init__(
        self,
        model_dir: str,
        network: MedGrounder,
        image_size: int,
        iso_mm: float,
        publish_path: str,
        load_path: Optional[str] = None,
        anatomy_task: Optional[Callable[[], Callable]] = None,
        description: str = "Train MedGrounder: stage 1 on weak anatomy boxes, stage 2 on finding boxes (003 §3.4)",
        config: Optional[Mapping[str, Any]] = None,
    ):
        super().__init__(description)
        self.model_dir = model_dir
        self._network = network
        self.image_size, self.iso_mm = int(image_size), float(iso_mm)
        self.publish_path, self.load_path = publish_path, load_path
        self.anatomy_task = anatomy_task
        self.stats_path = os.path.join(model_dir, "train_stats.json")
        self.replay_excluded_nouns: list[str] = []  # the last stage-2 load's phrase nouns left out of replay
        self._config: dict[str, Any] = {
            "stage": 2,
            "max_epochs": 30,
            "learning_rate": 3e-4,
            "weight_decay": 1e-4,
            "val_split": 0.2,
            "val_interval": 5,
            "pretrained": True,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "seed": 0,
            "studies_per_step": 2,
            "max_sentences": 24,
            "phrases_per_study": 8,  # stage 1: phrases per study and step, drawn from a pool of phrase_pool
            "phrase_pool": 48,
            "zero_box_fraction": None,  # most zero-box sentences per step (share); None: ZERO_BOX_FRACTION[stage]
            "stage1_replay_fraction": None,  # stage 2: share of replayed stage-1 phrases per step; None: STAGE1_REPLAY_FRACTION
            "weak_boxes_from": "anatomy",
            "body": "chest",
        }
        self._config.update(dict(config or {}))

    # ------------------------------------------------------------------ data
    def _structure_map(self, datastore: Datastore, image_id: str, image: str, source: str) -> Optional[np.ndarray]:
        import nibabel as nib

        if source == "labels":
            lid = datastore.get_label_by_image_id(image_id, "organs")
            return np.asarray(nib.load(datastore.get_label_uri(lid, "organs")).dataobj) if lid else None
        if self.anatomy_task is None:
            raise ValueError("weak_boxes_from='anatomy' needs the anatomy task")
        label_file, _ = self.anatomy_task()({"image": image, "device": "cpu", "model": "anatomy"})
        return np.asarray(nib.load(label_file).dataobj)

    def model_input(self, image) -> tuple[torch.Tensor, ModelGrid, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """A loaded CT (channel first, with its affine) -> (model input, its grid, the affine of the
        image the input was made from, and the map of the CT's voxel boxes onto that image).
        Here the CT itself (identity map); the 2D task's trainer makes a radiograph of it."""
        affine = np.asarray(image.affine, float)
        x, grid = prepare_image(image, affine, self.image_size, self.iso_mm, CT_WINDOWS)
        return x, grid, affine, lambda boxes: boxes

    def load_studies(self, datastore: Datastore, stage: int, req: Mapping[str, Any]) -> tuple[list[GroundingStudy], dict[str, str]]:
        """Pre-processed studies for ``stage`` and {image_id: why it was left out}.

        Stage 2 with ``stage1_replay_fraction`` > 0 also gives each study a pool of replayable
        stage-1 phrases (after every study is read: the nouns stage 2 grounds are left out)."""
        import nibabel as nib

        loader = Compose(load_ct(["image"]))
        rng = np.random.default_rng(int(req["seed"]))
        body = str(req.get("body") or "all")
        replay = stage1_replay_fraction(req, stage) > 0
        loaded, skipped = [], {}
        for image_id in sorted(datastore.list_images()):
            try:
                image = datastore.get_image_uri(image_id)
                studies_dir = os.path.dirname(image)
                part = body_part_of(studies_dir, image_id)
                if body != "all" and part not in (None, body):
                    skipped[image_id] = "other_body"
                    continue
                text = read_report(studies_dir, image_id) or (datastore.get_image_info(image_id) or {}).get("report")
                if not text or not str(text).strip():
                    skipped[image_id] = "no_report"
                    continue
                parsed = parse_report(text)
                d = loader({"image": image})
                anat: Optional[AnatomyBoxes] = None
                if stage == 1:
                    smap = self._structure_map(datastore, image_id, image, str(req["weak_boxes_from"]))
                    if smap is None:
                        skipped[image_id] = "no_structure_map"
                        continue
                    targets = anatomy_targets(parsed, smap)
                    anat = AnatomyBoxes(smap)
                else:
                    truth = read_truth(studies_dir, image_id)
                    if not truth or not truth.get("sentences"):
                        skipped[image_id] = "no_sentence_links"
                        continue
                    lid = datastore.get_label_by_image_id(image_id, "final")
                    inst_path = datastore.get_label_uri(lid, "final") if lid else truth_lesions_path(studies_dir, image_id)
                    inst = np.asarray(nib.load(inst_path).dataobj) if os.path.exists(inst_path) else None
                    targets = finding_targets(parsed, truth, inst)
                    if replay:
                        anat = self._replay_anatomy(datastore, image_id, image, str(req["weak_boxes_from"]))
                x, grid, affine, to_input = self.model_input(d["image"])
            except Exception as e:  # one bad study must not end the run
                logger.warning("MedGrounder train: skipping %s: %s", image_id, e)
                skipped[image_id] = f"unreadable: {e}"
                continue
            loaded.append((image_id, x, grid, affine, to_input, targets, anat))
        exclude: set[str] = set()
        if stage == 2:  # replay only the nouns no groundable stage-2 sentence grounds
            exclude = supervised_phrase_nouns(t.text for *_, targets, _ in loaded for t in targets if t.n_boxes)
        self.replay_excluded_nouns = sorted(exclude)
        studies = []
        for image_id, x, grid, affine, to_input, targets, anat in loaded:
            try:
                extra: list[SentenceTarget] = anatomy_phrases(rng, anat, int(req["phrase_pool"]), exclude) if anat is not None else []
                all_t = targets + extra
                boxes = [torch.as_tensor(grid.normalise(to_input(t.boxes), affine), dtype=torch.float32).reshape(-1, grid.spatial_dims * 2) for t in all_t]
            except Exception as e:  # one bad study must not end the run
                logger.warning("MedGrounder train: skipping %s: %s", image_id, e)
                skipped[image_id] = f"unreadable: {e}"
                continue
            studies.append(
                GroundingStudy(
                    image_id=image_id,
                    image=x,
                    grid=grid,
                    texts=[t.text for t in all_t],
                    targets=boxes,
                    source_boxes=[to_input(t.boxes) for t in all_t],
                    n_report=len(targets),
                )
            )
        return studies, skipped

    def _replay_anatomy(self, datastore: Datastore, image_id: str, image: str, source: str) -> Optional[AnatomyBoxes]:
        """The study's anatomy for stage-2 replay, None (no replay for it) when there is no structure map."""
        try:
            smap = self._structure_map(datastore, image_id, image, source)
        except Exception as e:
            logger.warning("MedGrounder train: no stage-1 replay for %s: %s", image_id, e)
            return None
        return AnatomyBoxes(smap) if smap is not None else None

    @staticmethod
    def split(studies: Sequence[GroundingStudy], val_split: float) -> tuple[list[GroundingStudy], list[GroundingStudy]]:
        """The last ``round(val_split * n)`` studies by id validate (at least one trains)."""
        studies = sorted(studies, key=lambda s: s.image_id)
        n_val = min(int(round(float(val_split) * len(studies))), len(studies) - 1) if val_split > 0 else 0
        return list(studies[: len(studies) - n_val]), list(studies[len(studies) - n_val :])

    # ------------------------------------------------------------------ steps
    @staticmethod
    def sample_sentences(
        study: GroundingStudy, cap: int, rng: random.Random, n_phrases: int = 0, max_zero_fraction: float = 1.0, phrase_fraction: float = 0.0
    ) -> list[int]:
        """Report sentences: all groundable ones, then zero-box ones at random, up to ``cap`` and to
        at most ``max_zero_fraction`` of the sentences taken (zero-box ones dominate reports; a study
        with no groundable sentence gives one); plus ``n_phrases`` drawn afresh from the study's
        phrase pool (stage 1), or enough of them to make ``phrase_fraction`` of the sentences
        taken (stage-2 replay)."""
        report = range(study.n_report)
        pos = [i for i in report if len(study.targets[i])]
        neg = [i for i in report if not len(study.targets[i])]
        rng.shuffle(pos)
        rng.shuffle(neg)
        take = pos[:cap]
        room = max(0, cap - len(take))
        if max_zero_fraction < 1.0:
            f = max(0.0, float(max_zero_fraction))
            room = min(room, math.ceil(round(len(take) * f / (1.0 - f), 6)) if take else 1)
        take += neg[:room]
        pool = list(range(study.n_report, len(study.texts)))
        if phrase_fraction > 0:
            f = min(float(phrase_fraction), 0.99)
            n_phrases += math.ceil(round(len(take) * f / (1.0 - f), 6))
        return take + rng.sample(pool, min(n_phrases, len(pool)))

    @torch.no_grad()
    def predict(
        self, model: MedGrounder, studies: Sequence[GroundingStudy], device, n_phrases: int = VAL_PHRASES, report: bool = True
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(corners, confidences, true corners) of each study's report sentences (unless not
        ``report``) and its first ``n_phrases`` pool phrases (a few, not the whole pool)."""
        model.eval()
        out = []
        for s in studies:
            idx = (list(range(s.n_report)) if report else []) + list(range(s.n_report, min(len(s.texts), s.n_report + n_phrases)))
            for a in range(0, len(idx), 32):
                chunk = idx[a : a + 32]
                texts = [s.texts[i] for i in chunk]
                o = model(s.image[None].to(device), texts, image_index=[0] * len(texts))
                for j, i in enumerate(chunk):
                    corners, conf = scored_corner_boxes(o["pred_logits"][j], o["pred_boxes"][j])
                    true = boxes_to_corners(s.targets[i]).numpy() if len(s.targets[i]) else np.zeros((0, corners.shape[1]))
                    out.append((corners, conf, true))
        model.train()
        return out

    @staticmethod
    def capped_zero_box(preds: Sequence[tuple], max_zero_fraction: float, seed: int = 0) -> list[tuple]:
        """``preds`` with the zero-box sentences cut (a fixed random subset) to ``max_zero_fraction``
        of the result, so validation sees the mix the stage trains on."""
        if max_zero_fraction >= 1.0:
            return list(preds)
        pos = [p for p in preds if len(p[2])]
        neg = [p for p in preds if not len(p[2])]
        f = max(0.0, float(max_zero_fraction))
        k = min(len(neg), math.ceil(round(len(pos) * f / (1.0 - f), 6)) if pos else len(neg))
        keep = sorted(random.Random(seed).sample(range(len(neg)), k))
        return pos + [neg[i] for i in keep]

    def validate(self, model: MedGrounder, studies: Sequence[GroundingStudy], device, stage: int, max_zero_fraction: float = 1.0) -> dict[str, Any]:
        """The §3.5 metrics at the threshold with the best centre-hit F1. Stage 1 scores the report
        sentences and a few phrases; stage 2 the report sentences only (its checkpoint criterion is
        about findings), and the replayed stage-1 phrases on their own at the same threshold."""
        n_phrases = VAL_PHRASES if stage == 1 else 0
        preds = self.capped_zero_box(self.predict(model, studies, device, n_phrases), max_zero_fraction)
        shape = (self.image_size,) * model.config.spatial_dims
        t, res = choose_threshold(preds, shape)
        o = res["overall"]
        row = {
            "val_threshold": t,
            "val_mIoU": o["mIoU"],
            "val_P@F1=1": o["P@F1=1"],
            "val_CH-F1": o["CH-F1"],
            "val_N-Acc": res["zero"]["N-Acc"],
            "val_sentences": o["n"],
        }
        replayed = self.predict(model, studies, device, VAL_PHRASES, report=False) if stage == 2 else []
        if replayed:
            r = evaluate(replayed, shape, t)
            row.update({"val_replay_mIoU": r["overall"]["mIoU"], "val_replay_P@F1=1": r["overall"]["P@F1=1"], "val_replay_sentences": r["overall"]["n"]})
        return row

    # ------------------------------------------------------------------ persistence
    def _load_pretrained(self, model: MedGrounder) -> Optional[str]:
        for path in (self.publish_path, self.load_path):
            if path and os.path.exists(path):
                try:
                    ckpt = torch.load(path, map_location="cpu")
                    model.load_state_dict(ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt)
                    logger.info("MedGrounder train: starting from %s", path)
                    return path
                except Exception as e:  # another config's weights: try the next, else train from scratch
                    logger.warning("MedGrounder train: cannot start from %s (%s)", path, e)
        return None

    def _publish(self, model: MedGrounder, stage: int, epoch: int, metric: Optional[float], threshold: Optional[float]) -> None:
        ckpt = {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": model.config.to_dict(),
            "stage": stage,
            "epoch": int(epoch),
            "metric": metric,
            "threshold": threshold,
        }
        save_checkpoint_atomic(ckpt, self.publish_path)

    def _write_stats(self, stats: Mapping[str, Any]) -> None:
        write_stats(stats, self.stats_path)

    # ------------------------------------------------------------------ run
    def __call__(self, request: Mapping[str, Any], datastore: Datastore) -> dict[str, Any]:
        req = {**self._config, **{k: v for k, v in dict(request or {}).items() if v is not None}}
        start = time.time()
        stage = parse_stage(req["stage"])
        max_epochs = int(req["max_epochs"])
        lr = float(req.get("lr", req["learning_rate"]))
        val_interval = max(1, int(req["val_interval"]))
        device = torch.device(req["device"] if (str(req["device"]) != "cuda" or torch.cuda.is_available()) else "cpu")
        rng = random.Random(int(req["seed"]))
        torch.manual_seed(int(req["seed"]))

        model = self._network
        replay_frac = stage1_replay_fraction(req, stage)  # a bad value fails before any study is read
        studies, skipped = self.load_studies(datastore, stage, req)
        if not studies:
            raise ValueError(f"MedGrounder train (stage {stage}): no usable study; skipped: {skipped}")
        train, val = self.split(studies, float(req["val_split"]))
        model.to(device)
        pretrained = self._load_pretrained(model) if truthy(req["pretrained"]) else None
        model.train()
        loss_fn = GroundingLoss(model.config)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=float(req["weight_decay"]))
        per_step, cap = max(1, int(req["studies_per_step"])), max(1, int(req["max_sentences"]))
        n_phrases = int(req["phrases_per_study"])
        zero_frac = float(ZERO_BOX_FRACTION[stage] if req.get("zero_box_fraction") in (None, "") else req["zero_box_fraction"])
        key = KEY_METRIC[stage]
        n_boxes = [len(t) for s in studies for t in s.targets[: s.n_report]] if stage == 2 else [len(t) for s in studies for t in s.targets]
        stats: dict[str, Any] = {
            "name": self.task_name,
            "stage": stage,
            "total_epochs": max_epochs,
            "epoch": 0,
            "best_metric": None,
            "best_metric_epoch": None,
            "key_metric_name": key,
            "n_train": len(train),
            "n_val": len(val),
            "n_sentences": len(n_boxes),
            "n_zero_box": sum(n == 0 for n in n_boxes),
            "n_single_box": sum(n == 1 for n in n_boxes),
            "n_multi_box": sum(n > 1 for n in n_boxes),
            "skipped": skipped,
            "learning_rate": lr,
            "zero_box_fraction": zero_frac,
            "stage1_replay_fraction": replay_frac,
            "n_replay_phrases": sum(len(s.texts) - s.n_report for s in studies) if stage == 2 else 0,
            "replay_excluded_nouns": list(self.replay_excluded_nouns) if stage == 2 else [],
            "device": str(device),
            "pretrained": pretrained,
            "publish_path": self.publish_path,
            "start_ts": int(start),
            "history": [],
        }
        best, published = -math.inf, False
        for epoch in range(1, max_epochs + 1):
            order = list(train)
            rng.shuffle(order)
            sums = {"total": 0.0, "groundability": 0.0, "l1": 0.0, "giou": 0.0}
            steps = 0
            for a in range(0, len(order), per_step):
                group = order[a : a + per_step]
                texts, targets, index = [], [], []
                for k, s in enumerate(group):
                    for i in self.sample_sentences(s, cap, rng, n_phrases if stage == 1 else 0, zero_frac, replay_frac):
                        texts.append(s.texts[i])
                        targets.append(s.targets[i].to(device))
                        index.append(k)
                images = torch.stack([s.image for s in group]).to(device)
                out = model(images, texts, image_index=index)
                losses = loss_fn(out, targets)
                if not torch.isfinite(losses["total"]):
                    logger.warning("MedGrounder train: non-finite loss at epoch %d; step skipped", epoch)
                    continue
                opt.zero_grad(set_to_none=True)
                losses["total"].backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)  # DETR/MDETR clip_max_norm
                opt.step()
                steps += 1
                for k in sums:
                    sums[k] += float(losses[k].detach())
            row: dict[str, Any] = {"epoch": epoch, **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()}, "steps": steps}
            if val and (epoch % val_interval == 0 or epoch == max_epochs):
                row.update(self.validate(model, val, device, stage, zero_frac))
                metric = row[key]
                if metric == metric and metric >= best:  # ties: the later, longer-trained weights
                    best = metric
                    stats.update(best_metric=metric, best_metric_epoch=epoch, threshold=row["val_threshold"])
                    self._publish(model, stage, epoch, metric, row["val_threshold"])
                    published = True
            elif not val:
                self._publish(model, stage, epoch, None, None)
                published = True
            logger.info("MedGrounder train (stage %d): epoch %d/%d %s", stage, epoch, max_epochs, {k: v for k, v in row.items() if k != "epoch"})
            stats["history"].append(row)
            stats.update(epoch=epoch, train_loss=row["train_total"], current_time=elapsed(start))
            self._write_stats(stats)
        if not published:
            self._publish(model, stage, max_epochs, None, None)
        stats.pop("current_time", None)
        stats["total_time"] = elapsed(start)
        stats["total_seconds"] = round(time.time() - start, 3)
        self._write_stats(stats)
        return copy.deepcopy(jsonable(stats))
