"""Does a supernet transfer? Digits 0-4 -> 5-9 on mnist5k, against training on 5-9 from scratch.

A supernet is trained on the digits 0-4 only (``data.classes``); then, for the same small budget
(default 2 epochs, same recipe), one supernet is fine-tuned on the digits 5-9 from it
(``init.source``: classifier rows re-initialised) and another is trained on 5-9 from random
weights. Both are scored on the 5-9 test split with inherited weights after BN recalibration,
on the min, middle and max subnets and on four subnets at the 20/40/60/80% MACs quantiles of
a seeded sample. Goal: transfer beats scratch on every subnet.

    python experiments/bench_transfer.py [--config mnist_sandwich] [--source-epochs 8] [--finetune-epochs 2]
    python experiments/bench_transfer.py --quick   # one epoch each on the 8x8 digits

Writes results/transfer.csv and results/transfer.png; runs resume from results/transfer_runs/.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from bench_common import QUICK_TRAINING, add_common_arguments, results_folder, write_results

from elasticnas.experiment import load_experiment, train_experiment
from elasticnas.hardware import count_all
from elasticnas.runs import load_trained
from elasticnas.supernet import evaluate_many

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SOURCE_CLASSES, TARGET_CLASSES = "[0,1,2,3,4]", "[5,6,7,8,9]"


def subnets_to_score(space, seed: int = 0) -> dict[str, object]:
    """min, four MACs quantiles of a seeded sample, middle, max."""
    pool = list(dict.fromkeys(space.sample(np.random.default_rng(seed), n=2000)))
    order = np.argsort(np.asarray(count_all(space, pool)["macs"]))
    picks = {f"q{int(q * 100)}": pool[order[int(q * (len(order) - 1))]] for q in (0.2, 0.4, 0.6, 0.8)}
    return {"min": space.min(), **picks, "middle": space.middle(), "max": space.max()}


def trained(config, folder: Path) -> float:
    """Train ``config`` into ``folder`` (resuming, or reusing a finished run); returns training seconds."""
    if (folder / "checkpoint.pt").exists():
        try:
            load_trained(folder)
        except Exception:
            train_experiment(config, folder, resume=True)
    else:
        train_experiment(config, folder)
    return float(pd.read_csv(folder / "metrics.csv")["seconds"].sum())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist_sandwich")
    parser.add_argument("--source-epochs", type=int, default=8)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="overrides for all three runs")
    parser.add_argument("--runs", type=Path, default=None,
                        help="where the runs resume from (default: transfer_runs/ beside the results)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.set, args.source_epochs, args.finetune_epochs = [*QUICK_TRAINING, *args.set], 1, 1
    args.runs = args.runs or results_folder(args) / "transfer_runs"

    source = load_experiment(args.config, [*args.set, f"data.classes={SOURCE_CLASSES}",
                                           f"train.epochs={args.source_epochs}"])
    seconds = {"source": trained(source, args.runs / "source")}
    target = load_experiment(args.config, [*args.set, f"data.classes={TARGET_CLASSES}",
                                           f"train.epochs={args.finetune_epochs}"])
    # Labels 0-4 now mean the digits 5-9: the parent's class rows would be confidently wrong.
    arms = {"transfer": replace(target, init=replace(target.init, source=str(args.runs / "source"),
                                                     reset_classifier=True)),
            "scratch": target}
    scores = {}
    for arm, config in arms.items():
        seconds[arm] = trained(config, args.runs / arm)
        run = load_trained(args.runs / arm)
        archs = subnets_to_score(run.space)
        if args.quick:
            archs = {name: archs[name] for name in ("min", "max")}
        results = evaluate_many(run.supernet, list(archs.values()), run.eval_data("test"))
        scores[arm] = {name: result.top1 for name, result in zip(archs, results, strict=True)}
    macs = np.asarray(count_all(run.space, list(archs.values()))["macs"])
    frame = pd.DataFrame({"subnet": list(archs), "macs": macs, "transfer_top1": list(scores["transfer"].values()),
                          "scratch_top1": list(scores["scratch"].values())})
    frame["gain"] = frame["transfer_top1"] - frame["scratch_top1"]
    write(frame, seconds, args)


def write(frame: pd.DataFrame, seconds: dict, args) -> None:
    folder = results_folder(args)
    write_results(frame, folder / "transfer.csv", quick=args.quick)
    print(frame.round(2).to_string(index=False))
    print(f"\ntraining seconds: {', '.join(f'{k} {v:.0f}' for k, v in seconds.items())}; "
          f"source {args.source_epochs} epochs on 0-4, fine-tune/scratch {args.finetune_epochs} epochs on 5-9")
    wins = int((frame["gain"] > 0).sum())
    print(f"transfer beats scratch on {wins}/{len(frame)} subnets (mean gain {frame['gain'].mean():+.2f} points, "
          f"smallest {frame['gain'].min():+.2f})")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    frame = frame.sort_values("macs")
    ax.plot(frame["macs"] / 1e6, frame["transfer_top1"], "o-", label=f"fine-tuned from 0-4 ({args.finetune_epochs} ep)")
    ax.plot(frame["macs"] / 1e6, frame["scratch_top1"], "s--", label=f"from scratch ({args.finetune_epochs} ep)")
    ax.set_xlabel("MACs (M)")
    ax.set_ylabel("test top-1 on digits 5-9 (%)")
    ax.set_title("Inherited subnets after transfer vs scratch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "transfer.png", dpi=120)


if __name__ == "__main__":
    main()
