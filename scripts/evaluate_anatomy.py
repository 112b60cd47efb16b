#!/usr/bin/env python
"""Per-organ Dice of the ``anatomy`` task on held-out synthetic studies (seeds never used in training).

    .venv/bin/python scripts/evaluate_anatomy.py --n 6 --preset default
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import nibabel as nib
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "apps", "radground"))

from lib.anatomy.labels import ABDOMEN_ORGANS  # noqa: E402
from lib.data.studies import generate_dataset, organ_path, split_seeds  # noqa: E402
from lib.metrics.segmentation import dice  # noqa: E402
from scripts_common import infer_task  # noqa: E402


def evaluate(n: int, preset: str, conf: dict | None = None) -> dict[str, float]:
    """Mean Dice per organ (and 'mean') of the bundled anatomy model over ``n`` held-out studies."""
    task = infer_task("anatomy", conf or {})
    studies = tempfile.mkdtemp(prefix="radground_anatomy_eval_")
    seeds = split_seeds("test", n)
    generate_dataset(studies, seeds, preset=preset, report_only_fraction=1.0)
    per_organ: dict[str, list[float]] = {k: [] for k in ABDOMEN_ORGANS}
    for seed in seeds:
        sid = f"synth_{seed:05d}"
        label_file, _ = task({"image": os.path.join(studies, f"{sid}.nii.gz"), "device": "cpu", "no_cache": True})
        pred = np.asarray(nib.load(label_file).dataobj)
        os.remove(label_file)
        gt = np.asarray(nib.load(organ_path(studies, sid)).dataobj)
        for name, oid in ABDOMEN_ORGANS.items():
            if (gt == oid).any():
                per_organ[name].append(dice(pred == oid, gt == oid))
    table = {k: float(np.mean(v)) for k, v in per_organ.items() if v}
    table["mean"] = float(np.mean(list(table.values())))
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--preset", default="default")
    args = ap.parse_args()
    t0 = time.time()
    table = evaluate(args.n, args.preset)
    print(f"anatomy: {args.n} held-out studies ({args.preset}) in {time.time() - t0:.0f}s")
    print("| organ | Dice % |\n|---|---|")
    for k, v in table.items():
        print(f"| {k} | {100 * v:.1f} |")


if __name__ == "__main__":
    main()
