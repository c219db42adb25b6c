"""Precision as a gene: is joint architecture + int8 search better than quantizing afterwards?

On mnist5k with ``tiny_mbv3`` and ONNX Runtime (or ``--runtime``; static int8 by the runtime's
own quantizer), three Pareto fronts of *measured* test top-1 against *measured* latency, each
arm with the same number of measured subnets for its accuracy predictor:

(a) fp32: measure N float32 subnets, fit, search float32 subnets only;
(b) fp32 then int8: (a)'s searched front, every subnet quantized to int8;
(c) joint: measure N subnets of the space searching float32 and int8, fit, search both.

The supernet, its latency table (layers at both precisions) and arm (c)'s measured subnets
come from ``elasticnas quickstart --runtime RUNTIME --precision int8`` in ``--run``
(trained first when missing). Each arm's searched front is thinned to ``--front`` subnets
evenly spread in predicted latency, and each of those is measured: test top-1 as deployed,
latency end to end (3 rounds, the least per-round median). Hypervolume of (test error,
latency) at one reference point for all arms, and the best test top-1 under latency budgets.

    python experiments/bench_precision.py [--runtime openvino] [--run DIR] [--subnets 100] [--front 15]
    python experiments/bench_precision.py --quick   # a toy int8 quickstart run, 12 subnets, fronts of 3

Writes results/precision.csv (one row per measured front subnet), results/precision_summary.csv
and results/precision.png; another runtime's files end in ``_<runtime>``, and ``--tag T``
adds ``_T``.
"""

from __future__ import annotations

import argparse
import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from bench_common import add_common_arguments, quick_pipeline_run, results_folder, write_results
from sklearn.pipeline import make_pipeline

from elasticnas.core.atomic import atomic_save_figure, pyplot
from elasticnas.hardware.latency import measure_archs
from elasticnas.hardware.quantize import evaluate_deployed
from elasticnas.measure import latency_table_for, measured_archs, read_evaluations
from elasticnas.pipeline import quickstart
from elasticnas.predictors import ArchEncoder, AutoPredictor
from elasticnas.runs import load_trained, spread_by_macs
from elasticnas.search import predictor_objective, run_search, table_latency_objective
from elasticnas.search.result import hypervolume, pareto_mask
from elasticnas.supernet.evaluation import evaluate_many

RUNTIMES = ("onnxruntime", "openvino", "executorch")  # those with an int8 tool


def fitted(space, archs, top1, trials: int, seed: int):
    model = make_pipeline(ArchEncoder(space, "ordinal"), AutoPredictor(n_trials=trials, seed=seed))
    return model.fit(archs, np.asarray(top1, dtype=float))


def searched_front(space, predictor, table, *, evals: int, keep: int, seed: int) -> list:
    """The predicted front, thinned to ``keep`` subnets evenly spread in predicted latency."""
    result = run_search(space, [predictor_objective(predictor), table_latency_objective(table)],
                        n_evals=evals, seed=seed, pop_size=100)
    front = result.front.sort_values("latency_ms")
    picks = np.unique(np.round(np.linspace(0, len(front) - 1, min(keep, len(front)))).astype(int))
    return [space.canonical(a) for a in front["arch"].iloc[picks]]


def measured(run, archs, arm: str, runtime: str, rounds: int = 3, repeats: int = 30) -> pd.DataFrame:
    test = run.eval_data("test")
    top1 = [evaluate_deployed(run.supernet, a, test, runtime=runtime).top1 for a in archs]
    latency = measure_archs(run.space, archs, runtime=runtime, rounds=rounds, repeats=repeats, progress=True)
    return pd.DataFrame({"arm": arm, "arch": [a.to_json() for a in archs], "precision": [a.precision for a in archs],
                         "test_top1": top1, "measured_ms": latency})


def summarise(rows: pd.DataFrame, budgets: int = 6) -> pd.DataFrame:
    reference = np.array([100 - rows["test_top1"].min() + 1, rows["measured_ms"].max() * 1.05])
    low, high = rows["measured_ms"].min(), rows["measured_ms"].max()
    limits = np.linspace(low, high, budgets + 1)[1:]
    out = []
    for arm, group in rows.groupby("arm", sort=False):
        F = np.column_stack([100 - group["test_top1"], group["measured_ms"]])
        row = {"arm": arm, "subnets": len(group), "int8_share": float((group["precision"] == 8).mean()),
               "front_size": int(pareto_mask(F).sum()), "hypervolume": hypervolume(F, reference)}
        for limit in limits:
            within = group[group["measured_ms"] <= limit]["test_top1"]
            row[f"best_top1_within_{limit:.3f}ms"] = float(within.max()) if len(within) else np.nan
        out.append(row)
    return pd.DataFrame(out)


def plot(rows: pd.DataFrame, path: Path, runtime: str) -> None:
    fig, ax = pyplot().subplots(figsize=(7, 4.5))
    right = rows["measured_ms"].max()
    for (arm, group), marker in zip(rows.groupby("arm", sort=False), "osD", strict=False):
        dots = ax.scatter(group["measured_ms"], group["test_top1"], marker=marker, alpha=0.3, label=f"{arm} (all)")
        F = np.column_stack([100 - group["test_top1"], group["measured_ms"]])
        front = group[pareto_mask(F)].sort_values("measured_ms")
        colour = dots.get_facecolor()[0][:3]
        ax.scatter(front["measured_ms"], front["test_top1"], marker=marker, color=colour, edgecolor="black")
        # the staircase runs on to the right edge: it reads as the best top-1 within each budget,
        # and a front of one subnet is still drawn
        ax.step([*front["measured_ms"], right], [*front["test_top1"], front["test_top1"].iloc[-1]], where="post",
                lw=1.5, color=colour, label=f"{arm} front")
    ax.set(xlabel=f"measured latency, ms ({runtime}, batch 1)", ylabel="test top-1 (%) as deployed",
           title="tiny_mbv3 on mnist5k: fp32 / fp32 then int8 / joint search")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save_figure(fig, path)


def file_tag(text: str) -> str:
    """``--tag``: it becomes part of file and folder names, so letters, digits, ``_``, ``-`` and ``.`` only."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]*", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use letters, digits, '_', '-' and '.' only (e.g. epyc_zen4)")
    return text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", default="onnxruntime", choices=RUNTIMES)
    parser.add_argument("--run", type=Path, default=None, help="default: runs/quickstart_int8[_RUNTIME]")
    parser.add_argument("--subnets", type=int, default=100, help="measured subnets per arm")
    parser.add_argument("--front", type=int, default=15, help="searched subnets measured per arm")
    parser.add_argument("--evals", type=int, default=20_000, help="predicted evaluations per search")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", type=file_tag,
                        help="appended to the run folder's and result files' names, e.g. the CPU, so that another "
                             "machine's run sits beside")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    suffix = "" if args.runtime == "onnxruntime" else f"_{args.runtime}"  # ONNX Runtime's files keep their names
    suffix += f"_{args.tag}" if args.tag else ""
    folder = results_folder(args)
    if args.quick:
        args.subnets, args.front, args.evals, args.trials = 12, 3, 300, 2
        args.run = quick_pipeline_run(args.run or folder / "quick_run", runtime=args.runtime, precision="int8",
                                      seed=args.seed)
    else:
        args.run = args.run or Path(f"runs/quickstart_int8{suffix}")
        quickstart(args.run, runtime=args.runtime, precision="int8", subnets=args.subnets, seed=args.seed)
    run = load_trained(args.run)
    joint = run.space
    fp32 = replace(joint, precisions=(32,))
    table = latency_table_for(args.run, joint, runtime=args.runtime)
    evaluations = read_evaluations(args.run).iloc[: args.subnets]
    joint_archs = measured_archs(args.run, joint, evaluations)
    fp32_archs = [joint.canonical(a.to_json()) for a in spread_by_macs(fp32, args.subnets, seed=args.seed)]
    fp32_top1 = [r.top1 for r in evaluate_many(run.supernet, fp32_archs, run.eval_data("val"))]

    fronts = {}
    fp32_front = searched_front(fp32, fitted(fp32, [fp32.canonical(a.to_json()) for a in fp32_archs], fp32_top1,
                                             args.trials, args.seed), table, evals=args.evals, keep=args.front,
                                seed=args.seed)
    fronts["(a) fp32"] = [joint.canonical(a.to_json()) for a in fp32_front]
    fronts["(b) fp32 then int8"] = [replace(a, precision=8) for a in fronts["(a) fp32"]]
    fronts["(c) joint"] = searched_front(joint, fitted(joint, joint_archs, evaluations["val_top1"], args.trials,
                                                       args.seed), table, evals=args.evals, keep=args.front,
                                         seed=args.seed)
    timing = {"rounds": 1, "repeats": 5} if args.quick else {}
    rows = pd.concat([measured(run, archs, arm, args.runtime, **timing) for arm, archs in fronts.items()],
                     ignore_index=True)
    write_results(rows, folder / f"precision{suffix}.csv", quick=args.quick)
    summary = summarise(rows)
    write_results(summary, folder / f"precision{suffix}_summary.csv", quick=args.quick)
    plot(rows, folder / f"precision{suffix}.png", args.runtime)
    print(summary.round(4).T.to_string())


if __name__ == "__main__":
    main()
