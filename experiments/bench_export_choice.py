"""Does choosing a budget's export on measured validation accuracy pay, against the prediction?

On a finished quickstart run (trained, profiled, measured, fitted), for each search seed: the
quickstart's search on the predictors, and for each of its three budgets the candidates of the
accuracy check (:mod:`elasticnas.accuracy_check`: the ``--check-top-k`` searched subnets
predicted best within the budget, and the run's measured subnets predicted within it). Every
candidate is scored on each held-out image (validation and test splits, 1,500 on mnist5k),
and the policies choose on one half and are judged on the other:

- ``predicted``: the subnet predicted most accurate (the quickstart with ``--check-top-k 0``);
- ``checked_searched``: the most accurate on the validation half of the searched top ``k``;
- ``checked``: the most accurate on the validation half of every candidate;
- ``blended``: the highest mean of predicted and validation-half top-1, over every candidate;
- ``guarded``: ``checked`` where the subnet predicted best is predicted above every subnet the
  predictor was fitted on (measured), else ``predicted`` (the quickstart's default);
- ``random``: a candidate at random (its expected test top-1: the candidates' mean);
- ``hindsight``: the candidate best on the test half itself, a ceiling no policy can reach.

One choice on one split says little: the differences are a few of 750 images, and the choices
repeat across search seeds. So the held-out images are split ``--splits`` times at random into
two halves of the split's size (the run's own split first); every policy chooses on each
validation half and is scored on its test half, and the table gives the mean over splits,
seeds and budgets, and each policy's paired difference from ``predicted`` with how often it is
above, level or below. Latency is the table's: the walk on measured latency that follows
faces every policy alike. Float32 subnets (the predicted policy's run) only.

    python experiments/bench_export_choice.py --run runs/quickstart [--seeds 0,1,2] [--splits 200]
    python experiments/bench_export_choice.py --quick   # on a toy quickstart run it makes first

Writes results/export_choice[_TAG].csv (per seed, budget, split and policy: the pick and its
validation and test top-1) and results/export_choice_summary[_TAG].csv (the printed table).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_common import add_common_arguments, quick_pipeline_run, results_folder, write_results
from bench_precision import file_tag
from bench_validation_split import right_or_wrong

from elasticnas.accuracy_check import checked_candidates
from elasticnas.budget import front_under
from elasticnas.core.atomic import atomic_write
from elasticnas.core.run_layout import PREDICTORS
from elasticnas.measure import latency_table_for, read_evaluations
from elasticnas.pipeline import quickstart_budgets
from elasticnas.predictors import load_predictor
from elasticnas.runs import load_trained
from elasticnas.searching import search_run

POLICIES = ("predicted", "checked_searched", "checked", "blended", "guarded", "random", "hindsight")


def candidate_sets(run_folder: Path, run, seeds, top_k: int, runtime: str) -> list[dict]:
    """Per seed and budget: the predicted pick, the searched top ``top_k`` and every candidate (arch JSON)."""
    latency_table_for(run_folder, run.space, runtime=runtime, check_speed=True)
    sets = []
    for seed in seeds:
        budgets = quickstart_budgets(read_evaluations(run_folder))
        _, folder = search_run(run_folder, latency_budgets_ms=budgets, runtime=runtime, seed=seed, progress=False)
        for budget in budgets:
            searched = front_under(folder / "archive.csv", budget, run.space)
            checks = checked_candidates(run_folder, run, searched, budget, top_k=top_k, runtime=runtime)
            sets.append({"seed": seed, "budget_ms": budget, "predicted": searched[0].arch.to_json(),
                         "searched": [p.arch.to_json() for p in searched[:top_k]], "all": checks["arch"].tolist()})
    return sets


def scored_images(run_folder: Path, run, archs: list[str]) -> dict[str, np.ndarray]:
    """``right_or_wrong`` per subnet, kept in the run folder so that a re-run scores only new subnets."""
    cache = run_folder / "export_choice_scored.npz"
    known = dict(np.load(cache)) if cache.exists() else {}
    todo = [a for a in archs if a not in known]
    if todo:
        known.update(zip(todo, right_or_wrong(run, [run.space.canonical(a) for a in todo]), strict=True))
        atomic_write(cache, lambda handle: np.savez(handle, **known), binary=True)
    return {a: known[a] for a in archs}


def halves(images: int, val_images: int, splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The run's own split (validation first), then ``splits - 1`` random ones of the same sizes."""
    order = [np.arange(images)]
    rng = np.random.default_rng(seed)
    order += [rng.permutation(images) for _ in range(splits - 1)]
    return [(o[:val_images], o[val_images:]) for o in order]


def choose(sets: list[dict], right: dict[str, np.ndarray], predicted: dict[str, float], best_measured: float,
           splits) -> pd.DataFrame:
    rows = []
    for split, (val, test) in enumerate(splits):
        val_top1 = {a: 100 * r[val].mean() for a, r in right.items()}
        test_top1 = {a: 100 * r[test].mean() for a, r in right.items()}
        for s in sets:
            picks = {"predicted": s["predicted"], "checked_searched": max(s["searched"], key=val_top1.get),
                     "checked": max(s["all"], key=val_top1.get), "hindsight": max(s["all"], key=test_top1.get),
                     "blended": max(s["all"], key=lambda a: predicted[a] + val_top1[a])}
            picks["guarded"] = picks["checked"] if predicted[s["predicted"]] > best_measured else s["predicted"]
            base = {"seed": s["seed"], "budget_ms": s["budget_ms"], "split": split, "candidates": len(s["all"])}
            rows += [{**base, "policy": p, "arch": a, "val_top1": val_top1[a], "test_top1": test_top1[a]}
                     for p, a in picks.items()]
            rows.append({**base, "policy": "random", "arch": "", "val_top1": np.mean([val_top1[a] for a in s["all"]]),
                         "test_top1": np.mean([test_top1[a] for a in s["all"]])})
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per policy: mean test top-1 and the paired difference from ``predicted`` (mean, and how
    often above, level, below), over every seed, budget and split; the run's own split apart."""
    wide = frame.pivot_table(index=["seed", "budget_ms", "split"], columns="policy", values="test_top1")
    own = wide.xs(0, level="split")
    rows = {}
    for policy in POLICIES:
        gap = wide[policy] - wide["predicted"]
        rows[policy] = {"test_top1": wide[policy].mean(), "vs_predicted": gap.mean(),
                        "above": (gap > 1e-9).mean(), "level": (gap.abs() <= 1e-9).mean(),
                        "below": (gap < -1e-9).mean(), "own_split_test_top1": own[policy].mean()}
    return pd.DataFrame(rows).T


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="a finished quickstart run folder (required "
                        "unless --quick, which makes a toy one)")
    parser.add_argument("--seeds", default="0,1,2", help="search seeds, comma-separated")
    parser.add_argument("--check-top-k", type=int, default=5, help="searched subnets measured per budget")
    parser.add_argument("--splits", type=int, default=200, help="validation/test splits (the run's own first)")
    parser.add_argument("--runtime", default="torch", help="the runtime the run's table was built for")
    parser.add_argument("--tag", type=file_tag, default="", help="appended to the result files' names")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    folder = results_folder(args)
    if args.quick:
        args.seeds, args.splits, args.check_top_k = "0", 5, 2
        args.run = args.run or quick_pipeline_run(folder / "quick_run")
    if args.run is None:
        parser.error("--run is required (a finished quickstart run folder)")
    run = load_trained(args.run)
    sets = candidate_sets(args.run, run, [int(s) for s in args.seeds.split(",")], args.check_top_k, args.runtime)
    archs = sorted({a for s in sets for a in (s["predicted"], *s["all"])})
    right = scored_images(args.run, run, archs)
    images, val_images = len(next(iter(right.values()))), len(run.splits.val)
    predictor = load_predictor(args.run / PREDICTORS / "accuracy.skops", run.space)
    predicted = dict(zip(archs, predictor.predict(archs), strict=True))
    best_measured = float(read_evaluations(args.run)["val_top1"].max())
    frame = choose(sets, right, predicted, best_measured, halves(images, val_images, args.splits, seed=0))
    table = summary(frame)
    suffix = f"_{args.tag}" if args.tag else ""
    write_results(frame, folder / f"export_choice{suffix}.csv", quick=args.quick)
    write_results(table, folder / f"export_choice_summary{suffix}.csv", quick=args.quick, index=True)
    print(f"{len(sets)} choices (seeds x budgets), {len(archs)} subnets, {args.splits} splits of {images} images")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
