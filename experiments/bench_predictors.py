"""Accuracy predictors: Kendall tau on held-out subnets against the number of training samples.

Two datasets: the reference trace of real Once-for-All subnets with ImageNet top-1
(../shared/refdata, 362 distinct subnets) and subnets measured from a trained MNIST
supernet (a run folder's evaluations.csv; trained and measured here if missing).
For each training size, ``--repeats`` random splits: fit on n subnets, score Kendall tau on
all the others. Methods: the DyNAS-T recipe (one-hot; Ridge/SVR grid search, chosen by
cross-validated MAPE), each estimator with default hyperparameters (ordinal encoding), and
AutoPredictor (ordinal and one-hot encodings).

    python experiments/bench_predictors.py [--run runs/bench_mnist] [--repeats 3] [--trials 30]
    python experiments/bench_predictors.py --quick   # one epoch on the digits, 25 training subnets, 2 trials

Writes results/predictors.csv (one row per split), results/predictors_summary.csv and
results/predictors.png.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_common import QUICK_TRAINING, add_common_arguments, results_folder, write_results

from elasticnas.core.atomic import atomic_save_figure, pyplot
from elasticnas.ofa_trace import load_reference_trace, reference_trace_path
from elasticnas.predictors import (
    ArchEncoder,
    AutoPredictor,
    DynastBaselinePredictor,
    create_estimator,
    kendall_tau,
    list_estimators,
)
from elasticnas.supernet import create_space

SIZES = (25, 50, 100, 200, 300)


def reference_dataset():
    trace = load_reference_trace()
    space = create_space("ofa_mbv3_w10", num_classes=1000)
    return space, [space.canonical(a) for a in trace["arch"]], trace["top1"].to_numpy()


def mnist_dataset(run: Path, n: int, overrides=(), quick: bool = False):
    """The run's measured subnets (trained and measured on first use). The predictors here learn
    accuracy only, so a quick run builds the latency table that measuring needs from few timings."""
    from elasticnas.experiment import load_experiment, train_experiment
    from elasticnas.measure import latency_table_for, measure_run
    from elasticnas.runs import run_space

    if not (run / "checkpoint.pt").exists():
        train_experiment(load_experiment("mnist_sandwich", list(overrides)), run)
    space = run_space(run)
    latency_table_for(run, space, **({"repeats": 3, "rounds": 1, "calibrate": 2} if quick else {}))
    evaluations = measure_run(run, n)
    return space, [space.canonical(a) for a in evaluations["arch"]], evaluations["val_top1"].to_numpy()


def methods(trials: int, seed: int):
    yield "dynast_baseline", "onehot", DynastBaselinePredictor(seed=seed)
    for name in list_estimators():
        yield name, "ordinal", create_estimator(name, seed=seed)
    yield "auto", "ordinal", AutoPredictor(n_trials=trials, seed=seed)
    yield "auto_onehot", "onehot", AutoPredictor(n_trials=trials, seed=seed)


def benchmark(dataset: str, space, archs, y, *, repeats: int, trials: int, min_test: int = 50,
              sizes=SIZES) -> list[dict]:
    encoded = {kind: ArchEncoder(space, kind).fit().transform(archs) for kind in ("onehot", "ordinal")}
    rows = []
    for n in [s for s in sizes if s <= len(y) - min_test]:
        for repeat in range(repeats):
            order = np.random.default_rng(1000 * repeat + n).permutation(len(y))
            train, test = order[:n], order[n:]
            for name, kind, model in methods(trials, seed=repeat):
                X = encoded[kind]
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(X[train], y[train])
                seconds = time.perf_counter() - start
                tau = kendall_tau(y[test], model.predict(X[test]))
                rows.append({"dataset": dataset, "method": name, "encoding": kind, "n_train": n, "repeat": repeat,
                             "n_test": len(test), "kendall_tau": tau, "fit_seconds": seconds})
            print(f"{dataset} n={n} repeat {repeat}: " + ", ".join(
                f"{r['method']} {r['kendall_tau']:.3f}" for r in rows if r["n_train"] == n and r["repeat"] == repeat
                and r["dataset"] == dataset), flush=True)
    return rows


def plot(summary: pd.DataFrame, path: Path) -> None:
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig, axes = pyplot().subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = summary[summary["dataset"] == dataset]
        for method, group in part.groupby("method", sort=False):
            style = {"lw": 2.5} if method.startswith("auto") or method == "dynast_baseline" else {"lw": 1, "alpha": 0.7}
            ax.plot(group["n_train"], group["kendall_tau"], marker="o", label=method, **style)
        ax.set(xscale="log", xlabel="training subnets", ylabel="Kendall tau on held-out subnets", title=dataset)
        ax.minorticks_off()
        ax.set_xticks(sorted(part["n_train"].unique()), [str(v) for v in sorted(part["n_train"].unique())])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None, help="MNIST run folder (default: runs/bench_mnist)")
    parser.add_argument("--mnist-subnets", type=int, default=360)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--skip", choices=["reference", "mnist"], default=None)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    folder = results_folder(args)
    sizes, overrides = SIZES, ()
    if args.quick:  # one epoch on the digits, 76 subnets measured, 25 to train on
        sizes, overrides, args.mnist_subnets, args.repeats, args.trials = (25,), QUICK_TRAINING, 76, 1, 2
    args.run = args.run or (folder / "bench_mnist" if args.quick else Path("runs/bench_mnist"))
    rows = []
    if args.skip != "reference":
        if reference_trace_path() is None:
            print("reference trace not found (../shared/refdata); skipping it")
        else:
            rows += benchmark("ofa_imagenet_reference", *reference_dataset(), repeats=args.repeats,
                              trials=args.trials, sizes=sizes)
    if args.skip != "mnist":
        rows += benchmark("mnist_supernet", *mnist_dataset(args.run, args.mnist_subnets, overrides, args.quick),
                          repeats=args.repeats, trials=args.trials, sizes=sizes)
    frame = pd.DataFrame(rows)
    write_results(frame, folder / "predictors.csv", quick=args.quick)
    summary = frame.groupby(["dataset", "method", "n_train"], sort=False).agg(
        kendall_tau=("kendall_tau", "mean"), tau_std=("kendall_tau", "std"), fit_seconds=("fit_seconds", "mean"),
    ).reset_index()
    write_results(summary, folder / "predictors_summary.csv", quick=args.quick)
    plot(summary, folder / "predictors.png")
    table = summary.pivot_table(index=["dataset", "method"], columns="n_train", values="kendall_tau", sort=False)
    print(table.round(3).to_string())
    auto, base = (summary[summary["method"] == m].set_index(["dataset", "n_train"])["kendall_tau"]
                  for m in ("auto", "dynast_baseline"))
    wins = (auto > base)
    print(f"AutoPredictor beats the DyNAS-T recipe in {int(wins.sum())} of {len(wins)} (dataset, size) cells")


if __name__ == "__main__":
    main()
