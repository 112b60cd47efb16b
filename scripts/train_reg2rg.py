#!/usr/bin/env python
"""Train Reg2RG's bundled tiny checkpoint on synthetic chest studies (004), in two stages.

Stage ``lm`` (no images): builds the tokenizer offline with ``tokenizers`` from synthetic chest
region reports and trains the small LLaMA on them (the "pretrained LLM" of 004, made here because
no causal LM installs from PyPI); writes ``model/reg2rg_tokenizer.json`` and the starting
checkpoints ``model/pretrained_reg2rg.pt`` (full model) and ``model/pretrained_reg2rg_glb.pt``
("GLB only" ablation), with random visual modules.

Stage ``task``: the app's own ``reg2rg`` train task (the code path of ``/train/reg2rg``) on
generated chest studies, starting from the bundled checkpoint of the chosen features; ships the
best weights back to it. Repeat it to continue training (each run fits a time budget).

    .venv/bin/python scripts/train_reg2rg.py lm --studies 1500 --steps 350
    .venv/bin/python scripts/train_reg2rg.py masks --n 300 --work W --minutes 14   # anatomy region maps, cached in W
    .venv/bin/python scripts/train_reg2rg.py task --n 300 --work W --minutes 10       # trains on them (--region-masks anatomy)
    .venv/bin/python scripts/train_reg2rg.py task --n 160 --minutes 10 --features glb
    # paper sizes on a GPU, LLaMA2-7B from a local folder (no lm stage: the folder brings its tokenizer)
    .venv/bin/python scripts/train_reg2rg.py task --variant paper --llm /models/Llama-2-7b-hf --preset default --n 2000 --epochs 6 --minutes 0 --lr 5e-5 --accum 16
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
sys.path.insert(0, APP_DIR)

from lib.configs.reg2rg import TOKENIZER_FILE, build_network, features_suffix  # noqa: E402
from lib.configs.variants import bundled_checkpoint  # noqa: E402
from lib.data.region_reports import REGION_NAMES, build_prompt, build_target, encode_example, shuffled  # noqa: E402
from lib.data.studies import SPLITS, generate_dataset  # noqa: E402

FULL, GLB = "txt,geo,glb", "glb"


def referencing_text(order: list[str], reports: dict) -> str:
    """The Reg2RG prompt with each ``<region_i>`` written as its area name, then the RRA target.

    Training on it gives the small LM the in-context referencing 004 relies on a 7B LLM for: the
    area after "The region i is" in the target can only be predicted by looking up region i in the
    prompt. In the Reg2RG stage the region's visual tokens take the place of the name.
    """
    prompt = build_prompt(len(order)).replace("<image>", "the volume")
    for i, area in enumerate(order):
        prompt = prompt.replace(f"<region_{i}>", area, 1)
    return prompt + " " + build_target(order, reports)


def report_corpus(n: int, rng: np.random.Generator) -> tuple[list[dict], list[str]]:
    """Region reports of ``n`` training seeds and LM texts: the RRA target in canonical order, and a
    referencing text (prompt with area names + target) in a shuffled order."""
    from lib.data.synthetic import generate_study

    reports, texts = [], []
    for seed in list(SPLITS["train"])[:n]:
        rep = generate_study(seed, "tiny", body="chest").truth["region_reports"]
        reports.append(rep)
        names = [r for r in REGION_NAMES if r in rep]
        texts.append(build_target(names, rep))
        texts.append(referencing_text([names[i] for i in shuffled(names, rng)], rep))
    return reports, texts


def stage_lm(args) -> None:
    from lib.networks.reg2rg.tokenizer import save_tokenizer_file, train_bpe_tokenizer

    rng = np.random.default_rng(0)
    t0 = time.time()
    _, texts = report_corpus(args.studies, rng)
    prompts = [build_prompt(10), build_prompt(0, use_local=False)]
    tokenizer = train_bpe_tokenizer(texts + prompts * 50, vocab_size=args.vocab)
    save_tokenizer_file(tokenizer, TOKENIZER_FILE)
    print(f"corpus: {len(texts)} texts from {args.studies} studies; tokenizer {len(tokenizer)} tokens -> {TOKENIZER_FILE} ({time.time() - t0:.0f}s)")

    model = build_network("tiny", {"reg2rg_features": FULL})
    base = [p for n, p in model.lm.named_parameters() if "lora_" not in n]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in base:
        p.requires_grad_(True)
    seqs = [encode_example(tokenizer, "", t)[0] for t in texts]  # BOS + (empty prompt) + target + EOS
    opt = torch.optim.AdamW(base, lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    pad = tokenizer.pad_token_id
    model.train()
    t0 = time.time()
    for step in range(args.steps):
        batch = [seqs[i] for i in rng.integers(0, len(seqs), args.batch)]
        ids = torch.nn.utils.rnn.pad_sequence(batch, batch_first=True, padding_value=pad)
        att = (torch.arange(ids.shape[1])[None] < torch.tensor([len(b) for b in batch])[:, None]).long()
        labels = ids.masked_fill(att == 0, -100)
        with model.lm.disable_adapter():
            loss = model.lm(input_ids=ids, attention_mask=att, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(base, 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"lm step {step}: loss {loss.item():.3f} ({time.time() - t0:.0f}s)", flush=True)
    lm_state = {k: v for k, v in model.checkpoint_state_dict().items() if k.startswith("lm.")}
    for features in (FULL, GLB):
        net = build_network("tiny", {"reg2rg_features": features})
        state = net.checkpoint_state_dict()
        state.update(lm_state)
        net.load_state_dict(state)
        target = bundled_checkpoint(f"reg2rg{features_suffix(features)}.pt")
        torch.save({"model": net.checkpoint_state_dict(), "config": net.config.to_dict(), "stage": "lm"}, target + ".tmp")
        os.replace(target + ".tmp", target)
        print(f"wrote {target} ({os.path.getsize(target) / 1e6:.1f} MB)")


def training_app(args, work: str):
    """(the app on ``work``'s generated chest studies, its model dir); the studies are made once per work folder."""
    studies = os.path.join(work, "studies")
    seeds = list(SPLITS["train"])[args.offset : args.offset + args.n]
    t0 = time.time()
    if not os.path.isdir(studies):
        generate_dataset(studies, seeds, preset=args.preset, body="chest")
    print(f"{len(seeds)} chest training studies ({args.preset}) in {time.time() - t0:.0f}s -> {studies}")

    from main import RadGroundApp

    model_dir = os.path.join(work, "model")
    conf = {"models": "reg2rg", "model_dir": model_dir, "variant": args.variant, "reg2rg_features": args.features}
    if getattr(args, "histogram_token", None) is not None:  # default: the variant's (tiny: on)
        conf["reg2rg_histogram_token"] = "true" if args.histogram_token else "false"
    if args.llm:
        conf["reg2rg_llm"] = args.llm
    return RadGroundApp(APP_DIR, studies, conf), model_dir


def stage_masks(args) -> None:
    """Fill the train task's anatomy region-mask cache for ``--work``'s studies (part ``--part i/k`` of
    them, for ``--minutes``), so that a ``task --region-masks anatomy`` run spends its budget training.
    Resumable: cached studies are skipped."""
    if not args.work:
        raise SystemExit("masks: give --work (the cache lives there, for the task stage to use)")
    app, _ = training_app(args, args.work)
    trainer = app._trainers["reg2rg"]
    entries, _ = trainer.datalist(app.datastore(), "anatomy")
    i, k = (int(x) for x in args.part.split("/"))
    images = [e["image"] for e in entries][i::k]
    t0 = time.time()
    counts = trainer.region_masks().fill(images, budget_s=args.minutes * 60.0)
    print(f"region masks for {len(images)} studies (part {args.part}): {counts} in {time.time() - t0:.0f}s")


def stage_task(args) -> None:
    work = args.work or tempfile.mkdtemp(prefix="radground_reg2rg_")
    app, model_dir = training_app(args, work)
    if args.init:  # continue from another run's checkpoint instead of the bundled one
        app._trainers["reg2rg"].load_path = args.init
    stats = app.train(
        {
            "model": "reg2rg",
            "max_epochs": args.epochs,
            "max_minutes": args.minutes,
            "learning_rate": args.lr,
            "val_split": args.val_split,
            "pretrained": True,
            "normal_region_keep": args.normal_keep,
            "select_by": args.select_by,
            "val_max_studies": args.val_max,
            "val_interval": args.val_interval,
            "grad_accum_steps": args.accum,
            "finding_aux_weight": args.aux_weight,
            "decision_weight": args.decision_weight,
            "texture_outside_hu": args.texture_outside_hu,
            "fill_region_holes": True if args.fill_region_holes else None,
            "region_masks": args.region_masks,
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        }
    )
    print(f"trained: epochs {stats.get('epoch')} best {stats.get('key_metric_name')} {stats.get('best_metric')} at epoch {stats.get('best_metric_epoch')} ({stats.get('total_seconds')}s)")
    for row in stats.get("history", []):
        print("  ", row)
    name = f"reg2rg{'' if args.variant == 'tiny' else '_' + args.variant}{features_suffix(args.features)}.pt"
    ckpt = torch.load(os.path.join(model_dir, name), map_location="cpu")
    if args.no_ship:
        print(f"kept {os.path.join(model_dir, name)} (not shipped)")
        return
    target = bundled_checkpoint(name)
    torch.save({"model": ckpt["model"], "config": ckpt["config"]}, target + ".tmp")
    os.replace(target + ".tmp", target)
    print(f"shipped {target} ({os.path.getsize(target) / 1e6:.1f} MB)")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="stage", required=True)
    lm = sub.add_parser("lm", help="tokenizer + language model on synthetic region reports")
    lm.add_argument("--studies", type=int, default=1500)
    lm.add_argument("--vocab", type=int, default=1024)
    lm.add_argument("--steps", type=int, default=350)
    lm.add_argument("--batch", type=int, default=16)
    lm.add_argument("--lr", type=float, default=3e-3)
    task = sub.add_parser("task", help="the reg2rg train task on generated chest studies")
    task.add_argument("--n", type=int, default=160)
    task.add_argument("--offset", type=int, default=0, help="first training seed")
    task.add_argument("--preset", default="small")
    task.add_argument("--variant", default="tiny", choices=("tiny", "paper"), help="paper: 004's sizes, for a GPU (with --llm)")
    task.add_argument("--llm", default=None, help="local LLaMA/Qwen folder (paper variant: LLaMA2-7B); LoRA on top, nothing downloaded")
    task.add_argument("--features", default=FULL, help=f"'{FULL}' (full model) or '{GLB}' (GLB-only ablation)")
    task.add_argument("--epochs", type=int, default=50)
    task.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget")
    task.add_argument("--lr", type=float, default=5e-4)
    task.add_argument("--val-split", type=float, default=0.1)
    task.add_argument("--normal-keep", type=float, default=1.0, help="region-balanced sampling: share of normal regions per step (full model)")
    task.add_argument("--select-by", default="val_loss", choices=("val_loss", "finding_f1"), help="checkpoint selection")
    task.add_argument("--accum", type=int, default=1, help="studies per optimiser step (004: 16)")
    task.add_argument("--aux-weight", type=float, default=0.0, help="finding-label auxiliary loss on the visual tokens (0: off, 004)")
    task.add_argument("--decision-weight", type=float, default=1.0, help="LM-loss weight of each region's prefix and first sentence (1: plain, 004)")
    task.add_argument("--val-interval", type=int, default=1, help="epochs between validations")
    task.add_argument("--val-max", type=int, default=32, help="validation studies whose reports are generated (finding_f1)")
    task.add_argument("--region-masks", default="anatomy", choices=("anatomy", "truth"), help="training masks: the anatomy task's (as served) or the studies' own")
    task.add_argument("--texture-outside-hu", type=float, default=None, help="texture crop value outside the region mask (default -1024; -400 = 0 normalised)")
    task.add_argument("--histogram-token", dest="histogram_token", action="store_true", default=None, help="one more token per region: its intensity histogram (the tiny variant's default)")
    task.add_argument("--no-histogram-token", dest="histogram_token", action="store_false", help="without it (runs 1-9; serve with --conf reg2rg_histogram_token false)")
    task.add_argument("--fill-region-holes", action="store_true", help="give each lung back the voxels it encloses before masking (lung findings the anatomy task labels as something else)")
    task.add_argument("--init", default=None, help="start from this checkpoint instead of the bundled one (chained runs)")
    task.add_argument("--no-ship", action="store_true", help="keep the checkpoint in --work/model, do not replace the bundled one")
    task.add_argument("--work", default=None, help="work folder, kept (default: a temp dir, removed)")
    masks = sub.add_parser("masks", help="fill the anatomy region-mask cache of --work's studies (before task --region-masks anatomy)")
    for flag, kw in (("--n", dict(type=int, default=160)), ("--offset", dict(type=int, default=0)), ("--preset", dict(default="small")),
                     ("--variant", dict(default="tiny")), ("--llm", dict(default=None)), ("--features", dict(default=FULL)),
                     ("--minutes", dict(type=float, default=14.0, help="stop after this long (resume by running again)")),
                     ("--part", dict(default="0/1", help="i/k: every k-th study from the i-th (parallel fills)")), ("--work", dict(required=True))):
        masks.add_argument(flag, **kw)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    {"lm": stage_lm, "task": stage_task, "masks": stage_masks}[args.stage](args)


if __name__ == "__main__":
    main()
