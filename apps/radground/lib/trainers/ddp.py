"""GLeVE training under PyTorch DDP: MONAI Label's multi-GPU option for the plain-torch trainer.

``DistributedGleveTrain`` is :class:`~lib.trainers.gleve.GleveTrain` plus the request keys MONAI
Label's ``BasicTrainTask`` has for this: ``multi_gpu`` (default true, as there: it only acts with two or more GPUs) and ``gpus`` ("all" or
"0,1"); ``world_size`` overrides the number of processes (the only way to ask for several on the
CPU, where the backend is gloo instead of nccl). Without ``multi_gpu``, or with fewer than two
processes, it *is* GleveTrain: the same call, nothing added.

With it, the processes are started as ``BasicTrainTask`` starts its own
(``torch.multiprocessing.spawn``; MONAI Label's background train runner sets ``MASTER_ADDR`` /
``MASTER_PORT``), and each runs GleveTrain's unchanged loop with three differences:

- the datalist is read once, by the parent, and every rank splits it the same way (same
  validation studies); rank r then trains on its r-th share of the training studies (MONAI's
  ``partition_dataset``, padded so every rank takes the same number of steps);
- before every optimiser step the gradients are averaged over the ranks (an all-reduce, as DDP
  does; a parameter keeps ``grad=None`` only if it has no gradient on any rank) and so are the
  batch-norm running statistics, so all ranks hold the same weights at all times;
- only rank 0 writes ``train_stats.json`` and publishes the checkpoint.

Why not wrap the network in ``DistributedDataParallel``: GleveTrain calls the network and its
attributes directly (``config``, ``text_encoder``, ``make_loss``, ``state_dict`` keys) and some
parameters get no gradient in a step (a lesion without candidates skips the refinement head);
averaging at the optimiser step gives DDP's arithmetic without touching that loop.
Limitation: a rank that skips a step for a non-finite loss leaves the others waiting at the
all-reduce until the process-group timeout (``ddp_timeout_s``, default 1800 s) ends the run.
"""
from __future__ import annotations

import copy
import datetime
import json
import logging
import os
import shutil
import socket
import tempfile
from typing import Any, Optional

import torch
import torch.distributed as dist
from monai.data import partition_dataset
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lib.trainers.common import truthy
from lib.trainers.gleve import GleveTrain

logger = logging.getLogger(__name__)


def world_size(request: dict[str, Any]) -> int:
    """Processes to start: ``world_size`` if given, else the GPUs named by ``gpus`` (or all)."""
    if request.get("world_size"):
        return int(request["world_size"])
    gpus = str(request.get("gpus") or "all")
    return torch.cuda.device_count() if gpus == "all" else len([g for g in gpus.split(",") if g.strip()])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@torch.no_grad()
def average_gradients(params, buffers, world: int) -> None:
    """All-reduce mean of the gradients (``None`` where no rank has one) and of float buffers."""
    params = list(params)
    if params:
        dev = params[0].device
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=dev)
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(has)
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for p, h in zip(params, has.tolist()):
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone() if h > 0 else None
            offset += n
    bufs = [b for b in buffers if torch.is_floating_point(b)]
    if bufs:
        flat = torch.cat([b.reshape(-1) for b in bufs])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for b in bufs:
            b.copy_(flat[offset : offset + b.numel()].view_as(b))
            offset += b.numel()


def _worker(rank: int, world: int, backend: str, trainer: "DistributedGleveTrain", request: dict, entries, skipped, out_dir: str, timeout_s: float):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s))
    req = dict(request)
    if backend == "nccl":
        gpus = str(req.get("gpus") or "all")
        ids = list(range(torch.cuda.device_count())) if gpus == "all" else [int(g) for g in gpus.split(",")]
        torch.cuda.set_device(ids[rank])
        req["device"] = f"cuda:{ids[rank]}"
    trainer._rank, trainer._world, trainer._given = rank, world, (entries, skipped)
    scratch = None
    if rank > 0:  # only rank 0 publishes and writes the stats MONAI Label shows
        scratch = tempfile.mkdtemp(prefix=f"gleve_rank{rank}_")
        trainer.model_dir, trainer.stats_path = scratch, os.path.join(scratch, "train_stats.json")
        trainer.publish_path = os.path.join(scratch, "gleve.pt")
    # spawn pickles the network's tensors into shared memory: without a private copy every rank
    # (and the parent) would step the same storage, the update applied once per rank, racing
    net = trainer._network = copy.deepcopy(trainer._network)
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: average_gradients([p for g in opt.param_groups for p in g["params"]], net.buffers(), world)
    )
    try:
        stats = GleveTrain.__call__(trainer, req, None)
        digest = float(sum(float(p.detach().double().sum()) for p in net.parameters()))
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({"stats": stats, "param_sum": digest, "n_train": stats.get("n_train")}, f)
    finally:
        hook.remove()
        dist.destroy_process_group()
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


class DistributedGleveTrain(GleveTrain):
    """GleveTrain with MONAI Label's ``multi_gpu`` / ``gpus`` request keys (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._config.setdefault("multi_gpu", True)
        self._config.setdefault("gpus", "all")
        self._rank, self._world, self._given = 0, 1, None

    # ------------------------------------------------------------------ per-rank views
    def datalist(self, datastore):
        if self._given is not None:  # in a rank: the parent's datalist
            entries, skipped = self._given
            return list(entries), dict(skipped)
        return super().datalist(datastore)

    def apply_mask_ratio(self, train, mask_ratio, weak_supervision, seed):
        out = GleveTrain.apply_mask_ratio(train, mask_ratio, weak_supervision, seed)
        if self._world < 2 or not out:
            return out
        return partition_dataset(out, num_partitions=self._world, even_divisible=True, shuffle=False)[self._rank]

    def epoch_studies(self, train, weak_per_epoch, rng, include_weak=True):
        # every rank must take the same number of optimizer steps (the gradient all-reduce), and
        # ranks hold different numbers of report-only studies: no per-epoch draw and no late start
        # of the report-only studies under DDP
        if self._world >= 2 and (weak_per_epoch is not None or not include_weak):
            logger.warning("GLeVE DDP: weak_per_epoch / weak_start_epoch ignored with %d processes", self._world)
            weak_per_epoch, include_weak = None, True
        return GleveTrain.epoch_studies(train, weak_per_epoch, rng, include_weak)

    # ------------------------------------------------------------------ run
    def __call__(self, request, datastore) -> dict[str, Any]:
        req = {**self._config, **{k: v for k, v in dict(request or {}).items() if v is not None}}
        world = world_size(req)
        if not truthy(req.get("multi_gpu", False)) or world < 2:
            return super().__call__(request, datastore)
        device = str(req.get("device") or "cpu")
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        entries, skipped = self.datalist(datastore)
        trainer = copy.copy(self)
        net = copy.copy(self._network)
        net._text_encoder = None  # each rank loads the frozen encoder itself (nothing to pickle)
        trainer._network, trainer._pre = net, {}
        logger.info("GLeVE train: %d processes (%s), %d studies", world, backend, len(entries))
        with tempfile.TemporaryDirectory(prefix="gleve_ddp_") as out_dir:
            torch.multiprocessing.spawn(
                _worker,
                nprocs=world,
                args=(world, backend, trainer, {k: v for k, v in req.items()}, entries, skipped, out_dir, float(req.get("ddp_timeout_s", 1800))),
                join=True,
            )
            ranks = []
            for r in range(world):
                with open(os.path.join(out_dir, f"rank{r}.json")) as f:
                    ranks.append(json.load(f))
        stats = ranks[0]["stats"]
        stats.update(
            world_size=world,
            distributed_backend=backend,
            n_train_per_rank=[r["n_train"] for r in ranks],
            rank_param_sums=[r["param_sum"] for r in ranks],
        )
        self._write_stats(stats)
        return stats
