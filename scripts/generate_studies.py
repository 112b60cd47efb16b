#!/usr/bin/env python
"""Generate synthetic abdominal CT studies (image, organ/lesion maps, report, truth) into a
MONAI Label datastore folder.

Example:
    python scripts/generate_studies.py --out apps/radground/studies --n 20 --preset default \
        --split train --report-only-fraction 0.5
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "apps", "radground"))

from lib.data.studies import SPLITS, generate_dataset, list_studies, split_seeds  # noqa: E402
from lib.data.synthetic.study import PRESETS  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="studies folder (created if missing)")
    ap.add_argument("--n", type=int, default=10, help="number of studies")
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--split", default="train", choices=sorted(SPLITS), help="seed range to draw from")
    ap.add_argument("--start", type=int, default=0, help="offset inside the split's seed range")
    ap.add_argument("--seeds", type=int, nargs="*", help="explicit seeds (overrides --split/--n/--start)")
    ap.add_argument("--report-only-fraction", type=float, default=0.0, help="fraction of studies written without labels/final")
    ap.add_argument("--body", default="abdomen", choices=["abdomen", "chest", "both"], help="body part (both: one study of each per seed)")
    ap.add_argument("--if-empty", action="store_true", help="do nothing when the folder already holds studies")
    args = ap.parse_args(argv)
    if args.if_empty and list_studies(args.out):
        print(f"{args.out} already holds {len(list_studies(args.out))} studies; not generating")
        return 0

    seeds = args.seeds if args.seeds else split_seeds(args.split, args.n, args.start)
    t0 = time.time()
    last = [t0]

    def show(info):
        now = time.time()
        mode = "report-only" if info["report_only"] else "labelled"
        print(f"{info['study_id']}  split={info['split']}  shape={'x'.join(map(str, info['shape']))}  lesions={info['n_lesions']}  {mode}  {now - last[0]:.2f}s", flush=True)
        last[0] = now

    written = generate_dataset(args.out, seeds, args.preset, args.report_only_fraction, on_study=show, body=args.body)
    n_ro = sum(w["report_only"] for w in written)
    print(f"wrote {len(written)} studies ({n_ro} report-only) to {os.path.abspath(args.out)} in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
