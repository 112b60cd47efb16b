"""Helpers shared by the scripts: the app's own infer tasks, built as the server builds them, and
held-out studies to score them on."""
from __future__ import annotations

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
if APP_DIR not in sys.path:
    sys.path.insert(0, APP_DIR)


def infer_task(name: str, conf: dict):
    """The app's infer task ``name`` with its bundled (or configured) weights, without a server."""
    from main import discover_configs

    path = discover_configs()[name]
    module_name, cls_name = path.rsplit(".", 1)
    cfg = getattr(__import__(module_name, fromlist=[cls_name]), cls_name)()
    cfg.init(name, conf.get("model_dir") or os.path.join(APP_DIR, "model"), conf, None)
    task = cfg.infer()
    return task[name] if isinstance(task, dict) else task


def heldout_studies(n: int, preset: str, report_only_fraction=1.0, prefix: str = "radground_heldout_", **generate_kwargs) -> tuple[str, list[int]]:
    """``n`` held-out synthetic studies (test seeds, never used in training) in a new temp folder.

    By default every study is report-only (no label in the datastore; the truth stays under
    ``truth/``); other keyword arguments go to ``generate_dataset``. Returns (folder, seeds); the
    caller owns the folder.
    """
    from lib.data.studies import generate_dataset, split_seeds

    studies = tempfile.mkdtemp(prefix=prefix)
    seeds = split_seeds("test", n)
    generate_dataset(studies, seeds, preset=preset, report_only_fraction=report_only_fraction, **generate_kwargs)
    return studies, seeds


def score_lesion_model(model: str, studies: str, seeds, conf: dict) -> tuple[dict, list[float]]:
    """Table-1 figures (lib.metrics.evaluation.summarise) of the app's infer task ``model`` on the
    abdominal held-out studies ``synth_<seed>`` in ``studies``, and the seconds each study took."""
    import time

    import nibabel as nib
    import numpy as np

    from lib.data.studies import read_report, read_truth, truth_lesions_path
    from lib.metrics.evaluation import evaluate_study, summarise
    from lib.reports import parse_report

    task = infer_task(model, conf)
    results, times = [], []
    for seed in seeds:
        sid = f"synth_{seed:05d}"
        image = os.path.join(studies, f"{sid}.nii.gz")
        truth = read_truth(studies, sid)
        t0 = time.time()
        report = read_report(studies, sid)
        # as the server does for report tasks: the parsed report travels with the request
        label_file, _ = task({"image": image, "device": "cpu", "report": report, "parsed_report": parse_report(report).model_dump()})
        times.append(time.time() - t0)
        pred = np.asarray(nib.load(label_file).dataobj)
        os.remove(label_file)
        gt = np.asarray(nib.load(truth_lesions_path(studies, sid)).dataobj)
        organs = np.asarray(nib.load(os.path.join(studies, "labels", "organs", f"{sid}.nii.gz")).dataobj)
        gt_organ = {les["id"]: les["organ"] for les in truth["lesions"]}
        results.append(evaluate_study(sid, pred, gt, organs, truth["spacing"], gt_organ=gt_organ))
    return summarise(results), times
