"""Issue 36's benchmark: one elastic language model trained once, against each size trained alone.

On the bundled corpus (Python's pydoc topics, bytes as tokens) and for the same sizes of the
``tiny_gpt`` space, three routes to a family of models:

- (a) ``supernet``: every size is a nested slice of one supernet trained once with
  ``experiments/configs/text_tiny_gpt.yaml`` (delayed shrinking: the largest alone first, then it, the
  smallest and one random subnet per step);
- (b) ``scratch``: each size trained alone from the supernet's initialisation for as many steps,
  with the same batches, context, optimiser and schedule as the supernet's one training;
- (c) ``pruned``: the largest size trained alone for as many steps, its key/value groups and MLP
  units ordered by their activations on training text (Minitron), each size cut from it and
  distilled from it (KL on the logits) for ``--distill-steps`` steps.

The sizes are the ``--sizes`` subnets spread evenly over the space's MACs range, the largest and
the smallest included (give ``--sizes-from RUN`` to take a quickstart run's slice table, the
sizes along its searched front, instead). Per size and route: validation bits per byte (with
its standard error over windows) and the training seconds the route spent; per size: decode ms
per token and prefill ms at two context lengths (torch, this CPU, whole models timed), and
memory (weights + KV cache at the training context). The goal (issue 36): (a) within 0.05 bits
per byte of the better of (b) and (c) at every size, for one training.

    python experiments/bench_lm_routes.py [--epochs 8] [--sizes 6] [--distill-steps 200]
    python experiments/bench_lm_routes.py --quick   # a toy space and corpus slice: seconds
    python experiments/bench_lm_routes.py --others-from experiments/results   # route (a) alone, a new recipe

Writes results/lm_routes.csv (one row per size and route) and lm_routes_summary.csv (one row per
size: the three routes' bits per byte side by side, the gap, latencies and memory).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_common import add_common_arguments, read_results, results_folder, write_results

from elasticnas.experiment import load_experiment, train_experiment
from elasticnas.hardware import count_all, measure_archs
from elasticnas.runs import load_trained, spread_by_macs
from elasticnas.supernet.batches import epoch_order, iterate
from elasticnas.supernet.catalogue import build_supernet
from elasticnas.supernet.evaluation import score
from elasticnas.supernet.families.decoder.importance import reorder_by_activations
from elasticnas.supernet.losses import distillation_loss, label_loss
from elasticnas.supernet.training import build_optimizer, lr_multiplier

QUICK = ["data.name=textfolder", "data.context=32", "data.batch_size=128", "supernet.overrides.resolutions=[32]",
         "train.epochs=1", "supernet.overrides.embed_choices=[64]", "supernet.overrides.depth_choices=[1,2]",
         "supernet.overrides.head_choices=[1,2]", "supernet.overrides.mlp_choices=[64,128]",
         "supernet.overrides.head_dim=32"]


def train_alone(model, forward, run, steps_per_epoch: int, epochs: int, *, teacher=None, steps: int | None = None,
                seed: int = 0) -> float:
    """Train ``forward(tokens) -> logits`` of ``model`` on the run's training windows with its
    optimiser and schedule, from the labels, or (``teacher``) by KL from the teacher's logits;
    returns seconds spent."""
    optim, batch = run.config.optim, run.config.data.batch_size
    total = steps or steps_per_epoch * epochs
    optimizer = build_optimizer(model, optim)
    warmup = int(round(optim.warmup_epochs * steps_per_epoch)) if steps is None else 0
    started, step = time.perf_counter(), 0
    model.train()
    for epoch in range(epochs if steps is None else 1 + total // steps_per_epoch):
        order = epoch_order(len(run.splits.train), seed, epoch)[: steps_per_epoch * batch]
        for tokens, labels in iterate(run.splits.train, order, batch):
            if step == total:
                break
            for group in optimizer.param_groups:
                group["lr"] = optim.lr * lr_multiplier(step, total, warmup, optim)
            logits = forward(tokens)
            if teacher is None:
                loss = label_loss(logits, labels)
            else:
                with torch.no_grad():
                    target = teacher(tokens)
                loss = distillation_loss(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip or float("inf"))
            optimizer.step()
            step += 1
    model.eval()
    return time.perf_counter() - started


def validation_bits(model, run) -> tuple[float, float]:
    tokens, labels = run.splits.val.tensors
    result = score(model, tokens, labels, batch_size=run.config.data.eval_batch_size)
    return result.bits, result.bits_se


def sizes_of(run, args) -> list:
    space = run.space
    if args.sizes_from:
        table = json.loads((Path(args.sizes_from) / "exports" / "slices" / "slices.json").read_text())
        return [space.canonical(row["arch"]) for row in table["slices"]]
    return spread_by_macs(space, args.sizes, seed=0)


def timings(space, archs, contexts, repeats: int) -> pd.DataFrame:
    """Decode ms per token and prefill ms of each size at each context (the weights do not matter)."""
    rows = [{} for _ in archs]
    wide = replace(space, resolutions=tuple(sorted(set(contexts) | set(space.resolutions))))
    for context in contexts:
        at = [wide.canonical({**a.to_dict(), "resolution": context}) for a in archs]
        for phase in ("decode", "prefill"):
            measured = measure_archs(wide.in_phase(phase), at, repeats=repeats, rounds=2)
            for row, ms in zip(rows, measured, strict=True):
                row[f"{phase}_ms_at_{context}"] = float(ms)
    return pd.DataFrame(rows)


def routes(run, archs, args, seconds_supernet: float) -> pd.DataFrame:
    space, rows = run.space, []
    steps_per_epoch = len(run.splits.train) // run.config.data.batch_size
    epochs = run.config.train.epochs
    for index, arch in enumerate(archs):
        rows.append({"size": index, "route": "(a) supernet", "train_s": seconds_supernet / len(archs),
                     **dict(zip(("val_bits_per_byte", "val_bits_per_byte_se"),
                                validation_bits(run.supernet.extract(arch).eval(), run), strict=True))})
    if args.others_from:
        return pd.concat([pd.DataFrame(rows), other_routes(args.others_from, archs)], ignore_index=True)
    fresh = _fresh_supernet(space)
    for index, arch in enumerate(archs):
        model = fresh.extract(arch)
        seconds = train_alone(model, model, run, steps_per_epoch, epochs)
        rows.append({"size": index, "route": "(b) scratch", "train_s": seconds,
                     **dict(zip(("val_bits_per_byte", "val_bits_per_byte_se"), validation_bits(model, run),
                                strict=True))})
        print(f"(b) size {index}: {rows[-1]['val_bits_per_byte']:.3f} bits per byte, {seconds:.0f} s", flush=True)
    largest = _fresh_supernet(space)
    seconds_largest = train_alone(largest, lambda tokens: largest(tokens, space.max()), run, steps_per_epoch, epochs)
    calibration = run.splits.train.tensors[0][:64]
    reorder_by_activations(largest, calibration)
    teacher = largest.extract(space.max()).eval()
    for index, arch in enumerate(archs):
        student = largest.extract(arch)
        seconds = train_alone(student, student, run, steps_per_epoch, 1, teacher=teacher, steps=args.distill_steps)
        rows.append({"size": index, "route": "(c) pruned", "train_s": seconds_largest / len(archs) + seconds,
                     **dict(zip(("val_bits_per_byte", "val_bits_per_byte_se"), validation_bits(student, run),
                                strict=True))})
        print(f"(c) size {index}: {rows[-1]['val_bits_per_byte']:.3f} bits per byte", flush=True)
    return pd.DataFrame(rows)


def other_routes(folder: Path, archs) -> pd.DataFrame:
    """Routes (b) and (c) as an earlier run of this benchmark wrote them, for the same sizes: they
    depend on the space, corpus, optimiser and schedule, not on the supernet's sampling strategy."""
    earlier = read_results(folder / "lm_routes_summary.csv")["arch"].map(json.loads).tolist()
    if earlier != [json.loads(a.to_json()) for a in archs]:
        raise SystemExit(f"--others-from {folder}: its sizes are not this run's; rerun routes (b) and (c) without it")
    frame = read_results(folder / "lm_routes.csv")
    return frame[frame["route"] != "(a) supernet"].reset_index(drop=True)


def _fresh_supernet(space):
    torch.manual_seed(0)
    return build_supernet(space)


def summarise(frame: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    wide = frame.pivot(index="size", columns="route", values="val_bits_per_byte")
    wide["gap_to_better_other"] = wide["(a) supernet"] - wide[["(b) scratch", "(c) pruned"]].min(axis=1)
    wide["within_0.05"] = wide["gap_to_better_other"] <= 0.05
    return pd.concat([sizes, wide.reset_index(drop=True)], axis=1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8, help="the supernet's training, and each route's tokens")
    parser.add_argument("--sizes", type=int, default=6)
    parser.add_argument("--sizes-from", type=Path, default=None, help="a quickstart run: its slice table's sizes")
    parser.add_argument("--distill-steps", type=int, default=200, help="(c): each pruned size's distillation")
    parser.add_argument("--contexts", default="64,128", help="context lengths the latencies are timed at")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--others-from", type=Path, default=None,
                        help="a results folder whose routes (b) and (c) to reuse, for a new supernet recipe")
    parser.add_argument("--out", type=Path, default=None, help="the supernet's run folder (resumed; default "
                        "runs/bench_lm_routes)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    folder = results_folder(args)
    overrides = [f"train.epochs={args.epochs}"]
    if args.quick:
        args.epochs, args.sizes, args.distill_steps, args.contexts, args.repeats = 1, 3, 5, "16,32", 3
        root = folder / "text"
        root.mkdir(parents=True, exist_ok=True)
        from elasticnas.text_data import load_corpus

        (root / "topics.txt").write_bytes(load_corpus("pydoc_topics").train[:96_000].tobytes())
        overrides = [*QUICK, f"data.root={root}"]
    out = args.out or (folder / "supernet" if args.quick else Path("runs/bench_lm_routes"))
    if not (out / "metrics.csv").exists() or len(pd.read_csv(out / "metrics.csv")) < args.epochs:
        train_experiment(load_experiment("text_tiny_gpt", overrides), out, resume=(out / "checkpoint.pt").exists(),
                         progress=not args.quick)
    run = load_trained(out)
    seconds_supernet = float(pd.read_csv(out / "metrics.csv")["seconds"].sum())
    archs = sizes_of(run, args)
    contexts = [int(c) for c in args.contexts.split(",")]
    counts = count_all(run.space, archs)
    sizes = pd.DataFrame({"arch": [a.to_json() for a in archs], "params": counts["params"],
                          "memory_mib": np.asarray(counts["memory_bytes"]) / 2**20})
    sizes = pd.concat([sizes, timings(run.space, archs, contexts, args.repeats)], axis=1)
    frame = routes(run, archs, args, seconds_supernet)
    write_results(frame, folder / "lm_routes.csv", quick=args.quick)
    summary = summarise(frame, sizes)
    write_results(summary, folder / "lm_routes_summary.csv", quick=args.quick)
    totals = frame.groupby("route")["train_s"].sum()
    print(summary.drop(columns="arch").round(3).to_string(index=False))
    print("training seconds per route: " + ", ".join(f"{k} {v:.0f}" for k, v in totals.items()))


if __name__ == "__main__":
    main()
