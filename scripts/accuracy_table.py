#!/usr/bin/env python
"""Every model's paper metrics on the held-out synthetic split, next to its baseline (issue 10).

    .venv/bin/python scripts/accuracy_table.py --small             # CI: 2 held-out studies per model, small presets
    .venv/bin/python scripts/accuracy_table.py --n 10 --out acc/   # full settings; acc/accuracy.md + acc/accuracy.json
    .venv/bin/python scripts/accuracy_table.py --models gleve,reg2rg

A registry: each model is one :class:`Entry` naming the ``scripts/evaluate_<model>.py`` that scores
it. That module exposes (the interface, also in the README's benchmark section)::

    def accuracy_rows(n_studies: int, small: bool) -> list[dict]
    ACCURACY_TITLE = "..."       # optional: the table's heading
    ACCURACY_HEADLINE = "..."    # optional: the column the summary shows (default: the first metric)

Each row is ``{"model": str, "baseline": bool, "group": str ("all" = overall), "n": int, <metric
column>: float | None, ...}``, the unit in the column's name ("Dice %", "HD95 mm"). The module
scores the bundled weights through the app's own infer task on test seeds only
(``scripts_common.heldout_studies``). An entry whose script is not there yet is listed as "not
available"; one that raises is listed as FAILED with its message, and the others still run.

Output: one markdown table per model (rows grouped so each model sits next to its baseline), then
a summary of every model's headline metric against its baseline's.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Optional

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)
import scripts_common  # noqa: E402,F401  (puts the app on sys.path)

RESERVED = ("model", "baseline", "group", "n")


@dataclass(frozen=True)
class Entry:
    """One model of the table: ``name`` (the served task) and the script module that scores it."""

    name: str
    module: str


#: One entry per model; a new model plugs in with one line here and ``accuracy_rows`` in its script.
REGISTRY: tuple[Entry, ...] = (
    Entry("gleve", "evaluate_lesion_models"),  # its rows include the lesion_baseline
    Entry("anatomy", "evaluate_anatomy"),
    Entry("medgrounder", "evaluate_medgrounder"),
    Entry("reg2rg", "evaluate_reg2rg"),
    Entry("medvolr1", "evaluate_medvolr1"),
    Entry("segdetexplain", "evaluate_segdetexplain"),
)


@dataclass
class Outcome:
    """What one entry gave: its rows, or why there are none."""

    entry: Entry
    title: str
    headline: Optional[str] = None
    rows: Optional[list[dict]] = None
    status: str = "ok"  # ok | not available | FAILED
    message: str = ""
    seconds: float = 0.0


def _load(entry: Entry):
    """The entry's module, or None when its script does not exist (yet)."""
    if not os.path.isfile(os.path.join(SCRIPTS, f"{entry.module}.py")):
        return None
    return importlib.import_module(entry.module)


def run_entry(entry: Entry, n_studies: int, small: bool) -> Outcome:
    """Score one registry entry; failures become the outcome's status, never an exception."""
    t0 = time.time()
    try:
        mod = _load(entry)
    except Exception as e:  # a script that does not even import is that model's failure only
        return Outcome(entry, entry.name, status="FAILED", message=f"import {entry.module}: {type(e).__name__}: {e}")
    if mod is None:
        return Outcome(entry, entry.name, status="not available", message=f"scripts/{entry.module}.py does not exist yet")
    title = getattr(mod, "ACCURACY_TITLE", entry.name)
    if not callable(getattr(mod, "accuracy_rows", None)):
        return Outcome(entry, title, status="not available", message=f"scripts/{entry.module}.py has no accuracy_rows(n_studies, small)")
    try:
        rows = [dict(r) for r in mod.accuracy_rows(n_studies, small)]
    except Exception as e:
        logging.getLogger(__name__).exception("%s failed", entry.name)
        return Outcome(entry, title, status="FAILED", message=f"{type(e).__name__}: {e}", seconds=time.time() - t0)
    if not rows:
        return Outcome(entry, title, status="FAILED", message="accuracy_rows returned no row", seconds=time.time() - t0)
    headline = getattr(mod, "ACCURACY_HEADLINE", None) or next(iter(metric_columns(rows)), None)
    return Outcome(entry, title, headline, rows, seconds=time.time() - t0)


# ---------------------------------------------------------------------------------- rendering
def metric_columns(rows: list[dict]) -> list[str]:
    """Metric columns in order of first appearance."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in RESERVED and k not in cols]
    return cols


def fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return str(int(v))
    return f"{float(v):.3f}" if 0 < abs(float(v)) < 1 else f"{float(v):.1f}"


def _group(r: dict) -> str:
    return str(r.get("group") or "all")


def model_table(rows: list[dict]) -> str:
    """Rows grouped by ``group`` (first-appearance order, 'all' last), the model rows before their baselines."""
    cols = metric_columns(rows)
    groups = sorted(dict.fromkeys(_group(r) for r in rows), key=lambda g: g == "all")  # stable: keeps the order otherwise
    lines = ["| model | group | n | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for g in groups:
        in_g = [r for r in rows if _group(r) == g]
        for r in sorted(in_g, key=lambda r: bool(r.get("baseline"))):
            name = f"{r['model']} (baseline)" if r.get("baseline") else str(r["model"])
            lines.append(f"| {name} | {g} | {fmt(r.get('n'))} | " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def summary_rows(outcome: Outcome) -> list[dict]:
    """Per model row with group 'all': its headline figure and its baseline's, the baseline being the
    overall baseline row with that figure whose name shares the longest prefix with the model's
    (``medgrounder_cxr`` -> ``medgrounder_cxr REC-style top-1``), the first one on a tie."""
    if outcome.status != "ok":
        return []
    h = outcome.headline
    overall = [r for r in outcome.rows if _group(r) == "all"]
    bases = [r for r in overall if r.get("baseline") and r.get(h) is not None]
    out = []
    for r in overall:
        if r.get("baseline"):
            continue
        base = max(bases, key=lambda b: len(os.path.commonprefix([str(b["model"]), str(r["model"])])), default=None)
        v, b = r.get(h), (base or {}).get(h)
        out.append({"table": outcome.entry.name, "model": str(r["model"]), "metric": h, "value": v,
                    "baseline": str(base["model"]) if base else "(none)", "baseline_value": b})
    return out


def summary_table(outcomes: list[Outcome]) -> str:
    lines = ["| table | model | metric | model value | baseline | baseline value | difference |", "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        if o.status != "ok":
            lines.append(f"| {o.entry.name} | {o.status}: {o.message} | | | | | |")
        for s in summary_rows(o):
            v, b = s["value"], s["baseline_value"]
            diff = v - b if isinstance(v, (int, float)) and isinstance(b, (int, float)) else None
            lines.append(f"| {s['table']} | {s['model']} | {s['metric']} | {fmt(v)} | {s['baseline']} | {fmt(b)} | {fmt(diff)} |")
    return "\n".join(lines)


def header(settings: dict) -> str:
    return f"Held-out synthetic split (test seeds, never trained on); settings: {json.dumps(settings)}\n"


def section(o: Outcome) -> str:
    """One model's heading and table (or why there is none)."""
    body = f"{model_table(o.rows)}\n\n({o.seconds:.0f} s)" if o.status == "ok" else f"{o.status}: {o.message}"
    return f"### {o.entry.name}: {o.title}\n\n{body}\n"


def render(outcomes: list[Outcome], settings: dict) -> str:
    return "\n".join([header(settings), *(section(o) for o in outcomes), "### Summary\n\n" + summary_table(outcomes)])


# ---------------------------------------------------------------------------------- command
def select(models: str) -> list[Entry]:
    if models == "all":
        return list(REGISTRY)
    wanted = [m.strip() for m in models.split(",") if m.strip()]
    known = {e.name: e for e in REGISTRY}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; registered: {', '.join(known)}")
    return [known[w] for w in wanted]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="CI settings: 2 held-out studies per model (unless --n), each script's small preset")
    ap.add_argument("--n", type=int, default=None, help="held-out studies per model (default 10; --small: 2)")
    ap.add_argument("--models", default="all", help="all or a comma list of registry names")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="folder for accuracy.md and accuracy.json")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a model is not available, not only when one FAILED")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    n = args.n or (2 if args.small else 10)
    settings = {"n_studies": n, "small": args.small, "threads": args.threads, "device": "cuda" if torch.cuda.is_available() else "cpu"}

    outcomes = []
    print(header(settings), flush=True)
    for entry in select(args.models):
        o = run_entry(entry, n, args.small)
        print(section(o), flush=True)  # each table as soon as it is scored: a long run killed midway keeps its figures
        outcomes.append(o)
    print("### Summary\n\n" + summary_table(outcomes), flush=True)
    text = render(outcomes, settings)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "accuracy.md"), "w") as f:
            f.write(text + "\n")
        with open(os.path.join(args.out, "accuracy.json"), "w") as f:
            json.dump({"settings": settings, "models": [{"name": o.entry.name, "title": o.title, "status": o.status, "message": o.message,
                                                         "headline": o.headline, "seconds": o.seconds, "rows": o.rows} for o in outcomes]},
                      f, indent=1, default=float)
    bad = [o.entry.name for o in outcomes if o.status == "FAILED" or (args.strict and o.status != "ok")]
    if bad:
        print(f"FAILED: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
