#!/usr/bin/env python
"""Speed and memory of every served task, measured through the app's own code paths (issue 10).

    .venv/bin/python scripts/benchmark.py                 # default synthetic CT (256x256x~128), 5 runs
    .venv/bin/python scripts/benchmark.py --small         # CI: 128^2 CT, tiny training studies, a few minutes
    .venv/bin/python scripts/benchmark.py --out bench/    # also writes bench/benchmark.md, .json and bench/overlays/

Figures:
* per infer task: median latency of ``--runs`` requests after ``--warmup`` (``app.infer``, the
  request guard included, as ``/infer`` runs it), the first (cold) request, peak resident memory,
  and the ratio to the ``lesion_baseline`` UNet pass timed in the same run;
* report-parser throughput (reports/s of ``lib.reports.parse_report``);
* training throughput (optimizer steps/s) of each tiny trainer on a couple of tiny studies;
* with ``--out``: overlay PNGs of the last timed answer of every lesion/box task (gleve,
  medgrounder, lesion_baseline, and any task answering in those forms) on the study's synthetic
  truth, one per true lesion/finding (``scripts/overlays.py``: CT slice, true vs predicted
  contours and boxes, the sentence as caption), drawn outside the timing.

On a GPU machine add ``--variant paper`` for the paper-size networks (a task without paper weights
answers 503 and shows as FAILED in its row).

Each task runs in its own subprocess: peak memory is the process's ``ru_maxrss`` (torch allocates
outside Python's heap, so tracemalloc would miss it), and one task's caches cannot warm another's.
Grounding tasks reuse the anatomy prior's per-image cache after the first request, as the server
does for repeated requests on a study; the ``anatomy`` row itself is timed with ``no_cache``.
With CUDA present the requests run on the GPU and the peak GPU memory is reported too.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
if APP_DIR not in sys.path:
    sys.path.insert(0, APP_DIR)

BASELINE = "lesion_baseline"
#: Tasks that ground chest CT, and a chest radiograph (the others read the abdominal study).
CHEST_TASKS = {"medgrounder", "reg2rg"}
RADIOGRAPH_TASKS = {"medgrounder_cxr"}
#: What a task's request needs besides the image (its report comes from the datastore).
REQUEST_EXTRAS = {"medvolr1": {"query": "the organ that stores bile"}}
#: Tasks that run other tasks: the app also loads these for them (timed together, in one row).
COMPANIONS = {"ground_all": "gleve,segdetexplain"}


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def _gpu_peak_mb():
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def _app(studies: str, task: str, model_dir: str, train: bool, variant: str = "tiny"):
    from main import RadGroundApp

    models = task if train or task not in COMPANIONS else f"{task},{COMPANIONS[task]}"
    conf = {"models": models, "model_dir": model_dir, "variant": variant}
    if not train:
        conf["skip_trainers"] = "true"
    return RadGroundApp(APP_DIR, studies, conf)


# ---------------------------------------------------------------------------------------- workers
def worker_infer(args) -> dict:
    """Time ``--runs`` requests of one infer task in this (fresh) process."""
    _threads(args.threads)
    model_dir = tempfile.mkdtemp(prefix="radground_bench_model_")
    try:
        app = _app(args.studies, args.task, model_dir, train=False, variant=args.variant)
        request = {"model": args.task, "image": args.image, "device": _device(), **REQUEST_EXTRAS.get(args.task, {})}
        if args.task == "anatomy":
            request["no_cache"] = True

        last: dict = {}

        def once(keep: bool = False) -> float:
            t0 = time.perf_counter()
            res = app.infer(dict(request))
            dt = time.perf_counter() - t0
            if keep and args.overlays and wants_overlays(args.task, res.get("params") or {}):
                last.update(write_overlays(args, res))
            for key in ("file", "label"):
                if isinstance(res.get(key), str) and os.path.isfile(res[key]):
                    os.remove(res[key])
            return dt

        first = once()
        for _ in range(args.warmup - 1):
            once()
        times = [once(keep=i == args.runs - 1) for i in range(args.runs)]
        return {"task": args.task, "image": args.image, "first_s": first, "median_s": statistics.median(times),
                "runs": len(times), "peak_rss_mb": _peak_rss_mb(), "gpu_peak_mb": _gpu_peak_mb(), **last}
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)


def write_overlays(args, res: dict) -> dict:
    """Overlay PNGs (scripts/overlays.py) of one answer on the study's synthetic truth, written
    outside the timing; ``{"overlays": [paths]}`` or ``{"overlay_error": why}``."""
    import nibabel as nib
    import numpy as np

    from lib.data.studies import image_path, read_truth, truth_lesions_path
    from overlays import task_overlays

    try:
        img = nib.load(image_path(args.studies, args.image))
        label_file = res.get("file") if isinstance(res.get("file"), str) else res.get("label")
        written = task_overlays(args.overlays, args.task, args.image, np.asarray(img.dataobj), img.header.get_zooms()[:3],
                                np.asarray(nib.load(label_file).dataobj), res.get("params") or {},
                                read_truth(args.studies, args.image), np.asarray(nib.load(truth_lesions_path(args.studies, args.image)).dataobj))
        return {"overlays": [w["path"] for w in written]}
    except Exception as e:  # the figures are an extra: a drawing failure must not lose the timing
        return {"overlay_error": f"{type(e).__name__}: {e}"}


def wants_overlays(task: str, params: dict) -> bool:
    """Tasks that answer lesions or boxes for report sentences (by answer form), and the baseline."""
    from lib.schema.adapters import detect_format

    if task in RADIOGRAPH_TASKS or task in COMPANIONS:  # 2D boxes / other tasks' answers: no CT truth to draw on
        return False
    return task == BASELINE or detect_format(params) in ("lesion_grounding", "phrase_grounding")


def worker_train(args) -> dict:
    """Train one task for ``--epochs`` through ``app.train``; steps/s from every optimizer step.

    A global optimizer step hook counts the steps of any trainer (MONAI's SupervisedTrainer and the
    plain-torch loops alike); the rate is taken between the first and last step, so the app's set-up
    and the final validation/publishing are not counted, data loading between steps is.
    """
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    _threads(args.threads)
    stamps: list[float] = []
    handle = register_optimizer_step_post_hook(lambda *a, **k: stamps.append(time.perf_counter()))
    model_dir = tempfile.mkdtemp(prefix="radground_bench_train_")
    try:
        app = _app(args.studies, args.task, model_dir, train=True, variant=args.variant)
        if args.task not in app._trainers:  # e.g. ground_all: its config has a trainer() that gives none
            return {"task": args.task, "skipped": "no trainer"}
        t0 = time.perf_counter()
        app.train({"model": args.task, "max_epochs": args.epochs, "val_interval": args.epochs, "val_split": 0.25,
                   "dataset": "Dataset", "dataloader": "DataLoader", "train_batch_size": 1, "val_batch_size": 1,
                   "pretrained": False, "device": "cuda" if torch.cuda.is_available() else "cpu"})
        total = time.perf_counter() - t0
    finally:
        handle.remove()
        shutil.rmtree(model_dir, ignore_errors=True)
    steps = len(stamps)
    rate = (steps - 1) / (stamps[-1] - stamps[0]) if steps >= 2 and stamps[-1] > stamps[0] else None
    return {"task": args.task, "steps": steps, "steps_per_s": rate, "total_s": total,
            "peak_rss_mb": _peak_rss_mb(), "gpu_peak_mb": _gpu_peak_mb()}


# ---------------------------------------------------------------------------------------- driver
def _run_worker(kind: str, extra: list[str], threads: int, timeout: float, variant: str = "tiny") -> dict:
    """Run this script as a worker subprocess; its result is the last JSON line it prints."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--threads", str(threads), "--variant", variant, *extra]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {p.returncode}: {' | '.join(tail)[-300:]}"}


def served_tasks(selection: str, trainers: bool = False) -> list[str]:
    """The app's tasks (lib/configs), all or a comma list; with ``trainers`` only those that train."""
    from main import discover_configs

    names = list(discover_configs())
    if selection != "all":
        wanted = [s.strip() for s in selection.split(",") if s.strip()]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise SystemExit(f"unknown task(s) {unknown}; available: {', '.join(names)}")
        names = wanted
    if trainers:
        kept = []
        for name in names:
            module_name, cls_name = discover_configs()[name].rsplit(".", 1)
            cfg = getattr(__import__(module_name, fromlist=[cls_name]), cls_name)
            if "trainer" in vars(cfg) or any("trainer" in vars(b) for b in cfg.__mro__[1:] if b.__module__.startswith("lib.")):
                kept.append(name)
        names = kept
    return names


def parser_throughput(report_texts: list[str], min_seconds: float) -> float:
    """Reports/s of ``parse_report`` over ``report_texts``, repeated for at least ``min_seconds``."""
    from lib.reports import parse_report

    parse_report(report_texts[0])  # warm-up (vocabulary, regexes)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        for text in report_texts:
            parse_report(text)
            n += 1
    return n / (time.perf_counter() - t0)


def _fmt(v, spec=".2f", none="-"):
    return none if v is None else format(v, spec)


def markdown(infer_rows: list[dict], parser_rps: float, train_rows: list[dict], settings: dict) -> str:
    base = next((r for r in infer_rows if r.get("task") == BASELINE and "error" not in r), None)
    lines = [f"Settings: {json.dumps(settings)}", "",
             "| infer task | image | median s | first s | x lesion_baseline | peak RSS MB | peak GPU MB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in infer_rows:
        if "error" in r:
            lines.append(f"| {r['task']} | FAILED: {r['error']} | | | | | |")
            continue
        ratio = r["median_s"] / base["median_s"] if base else None
        lines.append(f"| {r['task']} | {r['image']} | {r['median_s']:.3f} | {r['first_s']:.3f} | {_fmt(ratio)} | "
                     f"{r['peak_rss_mb']:.0f} | {_fmt(r['gpu_peak_mb'], '.0f')} |")
    drawn = [f"{r['task']} {len(r['overlays'])}" for r in infer_rows if r.get("overlays") is not None]
    drawn += [f"{r['task']} FAILED: {r['overlay_error']}" for r in infer_rows if r.get("overlay_error")]
    if drawn:
        lines += ["", "Overlay PNGs (overlays/<task>/<study>_<truth id>.png): " + ", ".join(drawn)]
    lines += ["", f"Report parser: {parser_rps:.1f} reports/s", "",
              "| trainer | steps | steps/s | wall s | peak RSS MB | peak GPU MB |", "| --- | --- | --- | --- | --- | --- |"]
    for r in train_rows:
        if "skipped" in r:
            continue
        if "error" in r:
            lines.append(f"| {r['task']} | FAILED: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['task']} | {r['steps']} | {_fmt(r['steps_per_s'], '.3f')} | {r['total_s']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {_fmt(r['gpu_peak_mb'], '.0f')} |")
    skipped = [f"{r['task']} ({r['skipped']})" for r in train_rows if "skipped" in r]
    if skipped:
        lines += ["", "Not trained: " + ", ".join(skipped)]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="CI settings: 'small' CT preset, 2 training epochs, short parser run")
    ap.add_argument("--preset", default=None, help="synthetic CT preset of the infer study (default: default; --small: small)")
    ap.add_argument("--runs", type=int, default=5, help="timed requests per task after warm-up (>= 5 for the median)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tasks", default="all", help="infer tasks: all or a comma list (lesion_baseline is always timed)")
    ap.add_argument("--train-tasks", default="all", help="trainers: all, none or a comma list")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs per trainer (default 3; --small: 2)")
    ap.add_argument("--train-seeds", type=int, default=2, help="tiny training studies per body part")
    ap.add_argument("--parser-seconds", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variant", default="tiny", help="task variant (tiny | paper: the paper-size networks, for a GPU)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per task subprocess")
    ap.add_argument("--out", default=None, help="folder for benchmark.md, benchmark.json and overlays/<task>/*.png")
    ap.add_argument("--no-overlays", action="store_true", help="with --out: skip the overlay PNGs")
    # worker mode (internal)
    ap.add_argument("--worker", choices=["infer", "train"], help=argparse.SUPPRESS)
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--studies", help=argparse.SUPPRESS)
    ap.add_argument("--image", help=argparse.SUPPRESS)
    ap.add_argument("--overlays", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        import logging

        logging.disable(logging.WARNING)
        result = worker_infer(args) if args.worker == "infer" else worker_train(args)
        print(json.dumps(result), flush=True)
        return 0

    if args.runs < 5:
        ap.error("--runs must be >= 5 (the median of at least five requests)")
    preset = args.preset or ("small" if args.small else "default")
    epochs = args.epochs or (2 if args.small else 3)
    parser_s = args.parser_seconds or (2.0 if args.small else 10.0)
    _threads(args.threads)

    from lib.data.studies import generate_dataset, read_report, split_seeds

    infer_tasks = served_tasks(args.tasks)
    if BASELINE not in infer_tasks:
        infer_tasks.insert(0, BASELINE)
    train_tasks = [] if args.train_tasks == "none" else served_tasks(args.train_tasks, trainers=True)
    settings = {"preset": preset, "runs": args.runs, "warmup": args.warmup, "threads": args.threads,
                "device": _device(), "variant": args.variant, "train_epochs": epochs, "train_preset": "tiny", "train_seeds": args.train_seeds}

    work = tempfile.mkdtemp(prefix="radground_bench_")
    try:
        studies = os.path.join(work, "infer")
        seed = split_seeds("test", 1)[0]
        t0 = time.time()
        generate_dataset(studies, [seed], preset=preset, body="both")
        print(f"generated the {preset} abdominal + chest study (seed {seed}) in {time.time() - t0:.0f}s", flush=True)
        images = {"abdomen": f"synth_{seed:05d}", "chest": f"chest_{seed:05d}"}
        if RADIOGRAPH_TASKS & set(infer_tasks):  # the chest CT's synthetic radiograph, in the same datastore
            from lib.data.synthetic.radiograph import write_radiograph_studies

            (images["radiograph"],) = write_radiograph_studies(studies, studies, [images["chest"]])

        infer_rows = []
        for task in infer_tasks:
            image = images["radiograph" if task in RADIOGRAPH_TASKS else "chest" if task in CHEST_TASKS else "abdomen"]
            extra = ["--task", task, "--studies", studies, "--image", image, "--runs", str(args.runs), "--warmup", str(args.warmup)]
            if args.out and not args.no_overlays:
                extra += ["--overlays", os.path.join(os.path.abspath(args.out), "overlays")]
            row = {"task": task, **_run_worker("infer", extra, args.threads, args.timeout, args.variant)}
            print(f"infer {task}: {row}", flush=True)
            infer_rows.append(row)

        reports = [read_report(studies, images[k]) for k in ("abdomen", "chest")]
        train_dir = os.path.join(work, "train")
        if train_tasks:
            generate_dataset(train_dir, split_seeds("train", args.train_seeds), preset="tiny", body="both")
            reports += [read_report(train_dir, f[:-4]) for f in sorted(os.listdir(os.path.join(train_dir, "reports")))]
        parser_rps = parser_throughput([r for r in reports if r], parser_s)
        print(f"parser: {parser_rps:.1f} reports/s over {len(reports)} reports", flush=True)

        train_rows = []
        for task in train_tasks:
            row = {"task": task, **_run_worker("train", ["--task", task, "--studies", train_dir, "--epochs", str(epochs)], args.threads, args.timeout, args.variant)}
            print(f"train {task}: {row}", flush=True)
            train_rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = markdown(infer_rows, parser_rps, train_rows, settings)
    print("\n" + table)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "benchmark.md"), "w") as f:
            f.write(table + "\n")
        with open(os.path.join(args.out, "benchmark.json"), "w") as f:
            json.dump({"settings": settings, "infer": infer_rows, "parser_reports_per_s": parser_rps, "train": train_rows}, f, indent=1)
    failed = [r["task"] for r in infer_rows + train_rows if "error" in r or "overlay_error" in r]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
