"""Search algorithms on a fixed, cheap, deterministic problem: hypervolume against evaluations.

The problem: ``ofa_mbv3_w10`` at 224 px; "true" accuracy is gradient-boosted trees fitted
on all 362 real subnets of the reference trace (../shared/refdata): a family the
predictor-in-the-loop search does not use (it fits ridge, SVR and Gaussian processes), so
it must learn the truth rather than recover it exactly. Latency is a per-layer
lookup table measured here once (torch, 2 threads, batch 1; cached in runs/). Maximise
accuracy, minimise latency. Each algorithm gets ``--evals`` true evaluations, ``--seeds``
seeds; hypervolume is taken at a fixed reference point. The predictor-in-the-loop search
treats the true accuracy as expensive (fits its own predictors on what it measured) and
records the seconds of its own machinery.

Also measured: predicted evaluations per second of NSGA-II (20,000 on the fitted trees and
the table) and whether the same seed gives the same front.

    python experiments/bench_search.py [--evals 500] [--seeds 5]
    python experiments/bench_search.py --quick   # nsga2 and random, 100 evaluations, one seed, a one-pass table

Writes results/search.csv (hypervolume per algorithm, seed and evaluation count),
results/search_summary.csv and results/search.png.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_common import add_common_arguments, results_folder, write_results
from sklearn.pipeline import make_pipeline

from elasticnas.core.atomic import atomic_save_figure, pyplot
from elasticnas.hardware import LatencyTable
from elasticnas.ofa_trace import load_reference_trace, reference_trace_path
from elasticnas.predictors import ArchEncoder, GradientBoostingPredictor
from elasticnas.search import Objective, run_guided_search, run_search, table_latency_objective
from elasticnas.search.result import hypervolume
from elasticnas.supernet import create_space

ALGORITHMS = ("nsga2", "agemoea", "random", "optuna-nsga2", "optuna-tpe", "guided")
CHECKPOINTS = (50, 100, 200, 300, 400, 500)


def problem(table_folder: Path, table_options: dict):
    space = create_space("ofa_mbv3_w10", num_classes=1000, resolutions=(224,))
    trace = load_reference_trace()
    archs = [space.canonical(a) for a in trace["arch"]]
    truth = make_pipeline(ArchEncoder(space, "ordinal"), GradientBoostingPredictor(random_state=0))
    truth.fit(archs, trace["top1"].to_numpy())
    if (table_folder / "latency_table.json").exists():
        table = LatencyTable.load(table_folder)
    else:
        table = LatencyTable.build(space, threads=2, out=table_folder, **table_options)
    accuracy = Objective("accuracy", truth.predict, maximize=True, source="measured")
    return space, accuracy, table_latency_objective(table, "latency_ms")


def hv_curve(result, reference: dict[str, float], evals: int) -> list[dict]:
    archive = result.archive.sort_values("eval_index")
    F = np.column_stack([-archive["accuracy"].to_numpy(), archive["latency_ms"].to_numpy()])
    ref = np.array([-reference["accuracy"], reference["latency_ms"]])
    return [{"n_evals": n, "hypervolume": hypervolume(F[:n], ref)} for n in CHECKPOINTS if n <= evals]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evals", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--table", type=Path, default=None, help="latency table folder (default: "
                        "runs/bench_search_table; built there once)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if reference_trace_path() is None:
        sys.exit("bench_search needs the reference trace in ../shared/refdata, which is absent here")
    folder = results_folder(args)
    table_options, speed_evals = {"repeats": 10, "rounds": 2}, 20_000
    if args.quick:
        args.evals, args.seeds, args.algorithms = 100, 1, "nsga2,random"
        table_options, speed_evals = {"repeats": 1, "rounds": 1, "warmup": 0}, 2_000
    args.table = args.table or (folder / "table" if args.quick else Path("runs/bench_search_table"))
    space, accuracy, latency = problem(args.table, table_options)
    anchors = [space.min(), space.max()]
    acc, lat = accuracy(anchors), latency(anchors)
    reference = {"accuracy": float(acc.min() - 0.1 * np.ptp(acc)), "latency_ms": float(lat.max() + 0.1 * np.ptp(lat))}

    # speed and determinism of predicted evaluations
    predicted = Objective("accuracy", accuracy.fn, maximize=True, source="predicted")
    start = time.perf_counter()
    fast = run_search(space, [predicted, latency], n_evals=speed_evals, seed=0, pop_size=100)
    speed_seconds = time.perf_counter() - start
    same = run_search(space, [predicted, latency], n_evals=speed_evals, seed=0, pop_size=100)
    deterministic = fast.front["arch"].tolist() == same.front["arch"].tolist()
    print(f"NSGA-II, {speed_evals:,} predicted evaluations: {speed_seconds:.1f} s; "
          f"same seed, same front: {deterministic}")

    rows, overheads = [], []
    for algorithm in args.algorithms.split(","):
        for seed in range(args.seeds):
            start = time.perf_counter()
            if algorithm == "guided":
                result = run_guided_search(space, [accuracy, latency], n_real_evals=args.evals, n_initial=50,
                                           per_iteration=50, inner_evals=20_000, seed=seed,
                                           reference_point=reference)
                overheads.append({"seed": seed, "overhead_seconds": result.iterations["overhead_seconds"].sum(),
                                  "iterations": len(result.iterations),
                                  "mean_tau_accuracy": result.iterations["tau_accuracy"].mean(),
                                  "final_tau_accuracy": result.iterations["tau_accuracy"].iloc[-1]})
            else:
                result = run_search(space, [accuracy, latency], algorithm=algorithm, n_evals=args.evals, seed=seed,
                                    pop_size=50, reference_point=reference)
            seconds = time.perf_counter() - start
            for point in hv_curve(result, reference, args.evals):
                rows.append({"algorithm": algorithm, "seed": seed, **point, "seconds": seconds})
            print(f"{algorithm} seed {seed}: hypervolume {rows[-1]['hypervolume']:.4f} at {rows[-1]['n_evals']} "
                  f"evaluations, {seconds:.1f} s", flush=True)
    frame = pd.DataFrame(rows)
    write_results(frame, folder / "search.csv", quick=args.quick)
    summary = frame.groupby(["algorithm", "n_evals"], sort=False).agg(
        hypervolume=("hypervolume", "mean"), hv_std=("hypervolume", "std"), seconds=("seconds", "mean")).reset_index()
    write_results(summary, folder / "search_summary.csv", quick=args.quick)
    if overheads:
        guided = pd.DataFrame(overheads)
        write_results(guided, folder / "search_guided_overhead.csv", quick=args.quick)
        print(guided.round(3).to_string(index=False))
    speed = pd.DataFrame([{"predicted_evals": speed_evals, "seconds": speed_seconds,
                           "same_seed_same_front": deterministic}])
    write_results(speed, folder / "search_speed.csv", quick=args.quick)

    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    for algorithm, group in summary.groupby("algorithm", sort=False):
        ax.errorbar(group["n_evals"], group["hypervolume"], yerr=group["hv_std"], marker="o", capsize=3,
                    label=algorithm)
    ax.set(xlabel="evaluations of the true objective", ylabel="hypervolume (accuracy x latency)",
           title=f"ofa_mbv3_w10 @224: mean of {args.seeds} seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_save_figure(fig, folder / "search.png")
    print(summary.pivot_table(index="algorithm", columns="n_evals", values="hypervolume", sort=False)
          .round(4).to_string())


if __name__ == "__main__":
    main()
