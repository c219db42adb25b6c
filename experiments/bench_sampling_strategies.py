"""Inherited vs from-scratch accuracy per sampling strategy, on mnist5k.

For each config (default: experiments/configs/mnist_<strategy>.yaml for every strategy; any other
bundled config, e.g. a family's own recipe, by name with --configs) the supernet is trained once;
then six subnets spread over the MACs range are evaluated with inherited weights (BN
recalibrated) and trained from scratch as standalone models for the same number of epochs
with the same optimizer settings. Reported per strategy: top-1 on the test split of each
subnet both ways, the mean gap (inherited - scratch), Kendall tau between the rankings, and
the wall time of supernet training.

    python experiments/bench_sampling_strategies.py [--epochs 8] [--strategies sandwich,uniform]
    python experiments/bench_sampling_strategies.py --configs mnist_vit_sandwich,mnist_resnet_sandwich
    python experiments/bench_sampling_strategies.py --strategies sandwich --recipes zero_init,exponential,bignas
    python experiments/bench_sampling_strategies.py --strategies sandwich --scratch-retests 2
    python experiments/bench_sampling_strategies.py --strategies uniform --recipes zero_init --epochs 30 --seeds 0,1,2
    python experiments/bench_sampling_strategies.py --strategies sandwich --scratch-retests 2 --subnets 12
    python experiments/bench_sampling_strategies.py --quick   # uniform, one epoch on the 8x8 digits

``--recipes`` trains each config again with parts of BigNAS's recipe on top (rows labelled
``config+recipe``); scratch subnets keep the config's own recipe, so they stay one reference.
``--scratch-retests K`` trains no supernet: it trains each config's scratch twins K more times
with other seeds (trainings already in the results are reused) and reports how far two trainings of
one subnet agree (the criteria's noise floor), and the tau a perfect ranking would reach against one
training and against their mean (``..._tau_ceiling.csv``); from the rows already benchmarked, each config
against the mean of the scratch trainings (``..._vs_scratch_mean.csv``, and over supernet seeds ``..._seeds.csv``,
with a plot).
``--seeds`` trains each supernet with more training seeds (rows labelled ``...#seedN``; seed 0 keeps
the plain label) and compares the mean inherited top-1 over seeds with the mean of the scratch retests,
so that both sides of the comparison average out seed noise.
``--subnets 12`` (or 9, 15, ...) compares a finer grid of MACs quantiles that holds the usual six and
the quantiles between them: tau on six subnets is a coarse figure (its standard error is about 0.35).
Its results go to files ending ``_12subnets``; the six keep their scratch trainings, and supernets
already trained are only evaluated again.
``--device cuda`` trains supernets and scratch twins on the GPU, with mixed precision where the
config's ``train.amp`` asks for it (the default); its results go to files ending ``_cuda``.
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from bench_common import QUICK_TRAINING, add_common_arguments, read_results, results_folder, write_results
from bench_common import RESULTS as RESULTS_DEFAULT
from scipy.stats import kendalltau
from scratch_twins import parse_label, scratch_recipe, train_from_scratch
from strategy_noise import (
    SEED_MARK,
    across_seeds,
    against_scratch_mean,
    plot_against_scratch,
    retest_agreement,
    tau_ceiling,
)

from elasticnas.core.errors import ConfigError
from elasticnas.experiment import build_run, load_experiment, train_experiment
from elasticnas.hardware import count_all
from elasticnas.hardware.table_build import device_name
from elasticnas.supernet import EvalData, evaluate_many
from elasticnas.supernet.evaluation import calibrated_subnet, recalibrate_bn, score
from elasticnas.supernet.finetuning import FinetuneConfig, finetune

STRATEGIES = ("sandwich", "uniform", "progressive_shrinking", "complexity_aware", "performance_aware",
              "delayed_shrinking")
RESULTS = RESULTS_DEFAULT  # main() points it at --results
QUICK = False  # main() sets it with --quick (recorded in each file's header)
RETESTS = "sampling_strategies_scratch_retests"
# Parts of BigNAS's recipe, as overrides on top of a config (``--recipes``).
OFF = ["init.zero_residual_norms=false"]  # the bundled CNN configs turn it on since the ablation
RECIPES = {
    "default": [],
    "old_default": OFF,
    "zero_init": ["init.zero_residual_norms=true"],
    "exponential": [*OFF, "optim.schedule=exponential", "optim.min_lr_ratio=0.05", "optim.constant_after=0.8"],
    "zero_init_exponential": ["init.zero_residual_norms=true", "optim.schedule=exponential",
                              "optim.min_lr_ratio=0.05", "optim.constant_after=0.8"],
    "largest_only": [*OFF, "train.regularise_largest_only=true"],
    "zero_init_largest_only": ["init.zero_residual_norms=true", "train.regularise_largest_only=true"],
    "bignas": ["init.zero_residual_norms=true", "train.regularise_largest_only=true", "optim.schedule=exponential",
               "optim.min_lr_ratio=0.05", "optim.constant_after=0.8"],
}


USUAL_PANEL = 6  # subnets compared unless --subnets asks for a finer grid
PANEL_SIZES = "6, 9, 12, ... (a finer grid that holds the usual six)"


def is_panel_size(n: int) -> bool:
    return n >= USUAL_PANEL and (n - USUAL_PANEL) % 3 == 0


def spread_subnets(space, n: int = USUAL_PANEL, seed: int = 0):
    """``n`` subnets at evenly spaced MACs quantiles (10% to 90%) of a seeded sample, the min and max included.

    The usual six come first, in their usual order, since a scratch twin's seed is its place in
    the list; a larger panel (9, 12, ...) refines the same grid of quantiles, so it holds the six
    (and their trainings) and adds the quantiles between them, from smallest to largest.
    """
    if not is_panel_size(n):
        raise ValueError(f"{n} subnets: choose {PANEL_SIZES}")
    pool = list(dict.fromkeys(space.sample(np.random.default_rng(seed), n=2000)))
    order = np.argsort(count_all(space, pool)["macs"])

    def at(fractions):  # exact fractions of the 10%-90% range: equal ones pick the same subnet on any grid
        return [pool[order[int((0.1 + 0.8 * float(f)) * (len(order) - 1))]] for f in fractions]

    usual = [Fraction(k, 3) for k in range(4)]
    finer = [f for f in (Fraction(k, n - 3) for k in range(n - 2)) if f not in usual]
    return [space.min(), *at(usual), space.max(), *at(finer)]


def device_suffix(device: str) -> str:
    """CPU results keep their names; another device's go beside them (``..._cuda.csv``)."""
    kind = torch.device(device).type
    return "" if kind == "cpu" else f"_{kind}"


def result_path(stem: str, device: str, subnets: int = USUAL_PANEL) -> Path:
    """Results of a panel other than the usual six subnets go beside them (``..._12subnets.csv``)."""
    panel = "" if subnets == USUAL_PANEL else f"_{subnets}subnets"
    return RESULTS / f"{stem}{device_suffix(device)}{panel}.csv"


def known_scratch_top1(detail_paths: list[Path], retest_paths: list[Path]) -> dict:
    """Scratch top-1 per (scratch recipe, architecture) already measured (its first training, seed =
    its place in the panel), from the benchmark's rows and the retests' first round: reused, not
    retrained. Keyed by recipe too, so a config whose twins train otherwise gets its own."""
    tables = [read_results(path).query("retest == 0") for path in retest_paths if path.exists()]
    tables += [_previous_rows(path) for path in detail_paths]
    recipes: dict[str, str | None] = {}  # per config named in the rows; None: no longer bundled
    known = {}
    for table in tables:
        if "arch" not in table:
            continue
        for label, arch, top1 in table[["config", "arch", "scratch_top1"]].itertuples(index=False):
            base = parse_label(label)[0]
            if base not in recipes:
                try:
                    recipes[base] = scratch_recipe(load_experiment(base))
                except ConfigError:
                    recipes[base] = None
            if recipes[base] is not None:
                known[recipes[base], arch] = top1
    return known


def _previous_rows(path: Path) -> pd.DataFrame:
    previous = read_results(path) if path.exists() else pd.DataFrame(columns=["config", "strategy"])
    if "config" not in previous:  # rows written before configs other than mnist_<strategy> were benchmarked
        previous.insert(0, "config", "mnist_" + previous["strategy"])
    return previous


def finetuned_top1(supernet, archs, splits, data: EvalData, epochs: int, config, work: Path) -> list[float]:
    """Test top-1 of each inherited subnet after ``epochs`` of ``elasticnas finetune``'s training."""
    largest = supernet.space.max()
    teacher = calibrated_subnet(supernet, largest, data)
    settings = FinetuneConfig(epochs=epochs, lr=config.optim.lr / 10, batch_size=config.data.batch_size)
    scores = []
    for i, arch in enumerate(archs):
        student = calibrated_subnet(supernet, arch, data).train()
        checkpoint = work / f"finetune_{i}.pt"
        checkpoint.unlink(missing_ok=True)
        finetune(student, teacher, splits.train, resolution=arch.resolution, teacher_resolution=largest.resolution,
                 config=settings, checkpoint=checkpoint, identity={"arch": arch.to_json()}, progress=False)
        device = next(student.parameters()).device
        calibration, images = data.at(arch.resolution, device)
        recalibrate_bn(student, calibration, data.calibration_batch_size).eval()
        scores.append(score(student, images, data.labels.to(device)).top1)
    return scores


def bench_one(name: str, args, overrides: list[str], known_scratch: dict, scratch_cache: dict) -> list[dict]:
    """Train the supernet of ``name`` (config[+recipe]) and compare its subnets with scratch twins."""
    base, recipe, seed = parse_label(name)
    seeded = [f"train.seed={seed}"] if seed else []
    # where "auto" already means the CPU, runs saved before --device existed still resume
    placed = [] if args.device == "cpu" and not torch.cuda.is_available() else [f"train.device={args.device}"]
    config = load_experiment(base, overrides + RECIPES[recipe or "default"] + seeded + placed)
    # scratch twins at the config's own epochs, whatever the supernet's (a quick run's at its toy sizes)
    scratch_config = load_experiment(base, list(QUICK_TRAINING) if args.quick else [])
    run_dir = args.runs / name.removeprefix("mnist_").replace("@", "_").replace(SEED_MARK, "_seed")
    resume = (run_dir / "checkpoint.pt").exists()
    trainer, metrics = train_experiment(config, run_dir, resume=resume, progress=True)
    train_seconds = float(metrics["seconds"].sum())  # the epochs' own times: right across resumes
    splits, _ = build_run(config)
    space = trainer.space
    archs = spread_subnets(space, args.subnets)
    test_data = EvalData.from_datasets(splits.train, splits.test, calibration_images=config.train.bn_calibration_images)
    inherited = [r.top1 for r in evaluate_many(trainer.model, archs, test_data)]
    finetuned = (finetuned_top1(trainer.model, archs, splits, test_data, args.finetune_epochs, config, run_dir)
                 if args.finetune_epochs else [float("nan")] * len(archs))
    key = scratch_recipe(scratch_config)
    if key not in scratch_cache:
        scratch_cache[key] = [known_scratch.get((key, a.to_json())) or
                              train_from_scratch(space, a, splits, scratch_config, seed=i, device=args.device)
                              for i, a in enumerate(archs)]
    scratch = scratch_cache[key]
    if ("seconds", key) not in scratch_cache:  # the budget's unit: one scratch subnet, the largest, trained alone
        started = time.perf_counter()
        train_from_scratch(space, space.max(), splits, scratch_config, seed=0, device=args.device)
        scratch_cache["seconds", key] = time.perf_counter() - started
    macs = count_all(space, archs)["macs"]
    rows = [{"config": name, "supernet": space.name, "strategy": config.sampler.name, "arch": arch.to_json(),
             "macs": int(m), "inherited_top1": inh, "scratch_top1": scr, "gap": inh - scr, "finetuned_top1": fin,
             "finetuned_gap": fin - scr, "finetune_epochs": args.finetune_epochs, "device": device_name(args.device)}
            for arch, m, inh, scr, fin in zip(archs, macs, inherited, scratch, finetuned, strict=True)]
    rows[-1]["train_seconds"] = train_seconds
    rows[-1]["scratch_max_seconds"] = scratch_cache["seconds", key]
    gaps = np.array(inherited) - np.array(scratch)
    print(f"{name}: mean gap {gaps.mean():+.2f}, worst {gaps.min():+.2f}, "
          f"tau {kendalltau(inherited, scratch)[0]:.2f}, {train_seconds:.0f} s", flush=True)
    return rows


FINETUNED = ("finetuned_top1", "finetuned_gap", "finetune_epochs")


def kept_finetuning(rows: list[dict], previous: pd.DataFrame) -> list[dict]:
    """Rows of a run without fine-tuning keep the fine-tuned results an earlier run wrote for the
    same config and subnet, when the supernet is the same one (equal inherited top-1): a re-run
    for other figures must not erase them."""
    if "finetuned_top1" not in previous:
        return rows
    earlier = {(r["config"], r["arch"]): r for r in previous.to_dict("records")
               if pd.notna(r.get("finetune_epochs")) and r["finetune_epochs"] > 0}
    for row in rows:
        old = earlier.get((row["config"], row["arch"]))
        if not row["finetune_epochs"] and old is not None and old["inherited_top1"] == row["inherited_top1"]:
            row.update({column: old[column] for column in FINETUNED})
    return rows


def scratch_retests(config_name: str, retests: int, known_scratch: dict, path: Path,
                    device: str = "cpu", subnets: int = USUAL_PANEL, also_known: Path | None = None) -> pd.DataFrame:
    """The scratch twins of ``config_name`` trained ``retests`` more times, seed ``i + 100 * r``
    (``also_known``: the usual panel's retests, whose trainings a larger panel reuses).

    Two trainings of one subnet differ by seed alone; how much they differ is the noise floor
    of both criteria: the worst gap a subnet can show against a second training of itself, and
    the Kendall tau two scratch rankings reach. Rows are written after every training (resumable).
    """
    config = load_experiment(config_name)
    splits, supernet = build_run(config)
    space = supernet.space
    archs = spread_subnets(space, subnets)
    macs = count_all(space, archs)["macs"]
    columns = ["config", "arch", "seed", "scratch_top1"]
    done = read_results(path) if path.exists() else pd.DataFrame(columns=columns)
    earlier = done
    if also_known is not None and also_known.exists():
        earlier = pd.concat([read_results(also_known)[columns], done[columns]])
    known = {(c, a, int(s)): t for c, a, s, t in earlier[columns].itertuples(False)}
    recipe = scratch_recipe(config)
    rows = done[done["config"] != config_name].to_dict("records")
    for retest in range(retests + 1):
        for i, (arch, m) in enumerate(zip(archs, macs, strict=True)):
            seed = i + 100 * retest
            top1 = known.get((config_name, arch.to_json(), seed))
            if top1 is None and retest == 0:  # the benchmark's own twins
                top1 = known_scratch.get((recipe, arch.to_json()))
            if top1 is None:
                top1 = train_from_scratch(space, arch, splits, config, seed=seed, device=device)
            rows.append({"config": config_name, "arch": arch.to_json(), "macs": int(m), "seed": seed,
                         "retest": retest, "scratch_top1": top1})
            write_results(pd.DataFrame(rows), path, quick=QUICK)
    return pd.DataFrame(rows)


def summarise(detail: pd.DataFrame) -> pd.DataFrame:
    detail["supernet"] = detail["supernet"].fillna("tiny_mbv3")  # rows from before the column existed
    if "finetuned_top1" not in detail:
        detail["finetuned_top1"] = detail["finetuned_gap"] = np.nan
    return detail.groupby(["config", "supernet", "strategy"], sort=False).apply(lambda g: pd.Series({
        "mean_gap": g["gap"].mean(), "worst_gap": g["gap"].min(),
        "kendall_tau": kendalltau(g["inherited_top1"], g["scratch_top1"])[0],
        "inherited_mean": g["inherited_top1"].mean(), "scratch_mean": g["scratch_top1"].mean(),
        "finetuned_mean": g["finetuned_top1"].mean(), "finetuned_mean_gap": g["finetuned_gap"].mean(),
        "finetuned_worst_gap": g["finetuned_gap"].min(),
        "train_seconds": g["train_seconds"].max(),
        "scratch_max_seconds": g["scratch_max_seconds"].max() if "scratch_max_seconds" in g else np.nan}),
        include_groups=False).reset_index().round(3)


def _write(frame: pd.DataFrame, stem: str, args) -> None:
    write_results(frame, result_path(stem, args.device, args.subnets), quick=QUICK)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="mnist_<strategy> configs to run")
    parser.add_argument("--configs", default=None, help="bundled config names to run instead of --strategies")
    parser.add_argument("--epochs", type=int, default=None, help="override every config's train.epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=None, help="run folders (default: runs/bench_strategies[_cuda])")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where supernets and scratch twins train")
    parser.add_argument("--recipes", default="default", help=f"comma-separated, of {', '.join(RECIPES)}")
    parser.add_argument("--finetune-epochs", type=int, default=0, help="also fine-tune each inherited subnet")
    parser.add_argument("--seeds", default="0", help="supernet training seeds, comma-separated (0: the config's)")
    parser.add_argument("--subnets", type=int, default=USUAL_PANEL,
                        help="subnets compared: 6, or a finer grid holding them (9, 12, ...; to *_<n>subnets.csv)")
    parser.add_argument("--scratch-retests", type=int, default=0,
                        help="only train the configs' scratch twins this many more times (other seeds)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    global RESULTS, QUICK
    RESULTS, QUICK = results_folder(args), args.quick
    if args.quick:
        args.strategies, args.configs, args.recipes, args.seeds = "uniform", None, "default", "0"
        args.runs = args.runs or RESULTS / "runs"
    torch.set_num_threads(args.threads)
    if torch.device(args.device).type not in ("cpu", "cuda"):
        parser.error(f"--device={args.device!r}: choose cpu or cuda")
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("--device=cuda, but torch sees no CUDA device here")
    args.runs = args.runs or Path("runs/bench_strategies" + device_suffix(args.device))
    overrides = [f"train.epochs={args.epochs}"] if args.epochs else []
    overrides = [*QUICK_TRAINING, *overrides] if args.quick else overrides
    if not is_panel_size(args.subnets):
        parser.error(f"--subnets={args.subnets}: choose {PANEL_SIZES}")
    detail_path = result_path("sampling_strategies_subnets", args.device, args.subnets)
    configs = args.configs.split(",") if args.configs else [f"mnist_{s}" for s in args.strategies.split(",")]
    if args.scratch_retests < 0:
        parser.error(f"--scratch-retests={args.scratch_retests} must be 0 (off) or more")
    unknown = set(args.recipes.split(",")) - set(RECIPES)
    if unknown:
        parser.error(f"unknown recipes {sorted(unknown)}; choose from {', '.join(RECIPES)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds={args.seeds!r} must be comma-separated non-negative integers, e.g. 0,1,2")
    if min(seeds) < 0 or len(set(seeds)) != len(seeds):
        parser.error(f"--seeds={args.seeds!r} must be distinct non-negative integers, e.g. 0,1,2")
    budget = f"@{args.epochs}ep" if args.epochs else ""  # rows of another supernet budget keep their own label
    chosen = [(c if r == "default" else f"{c}+{r}") + budget + (f"{SEED_MARK}{s}" if s else "")
              for c in configs for r in args.recipes.split(",") for s in seeds]
    previous = _previous_rows(detail_path)
    # scratch training depends on the architecture, epochs and optimizer, not on the strategy:
    # earlier scratch results for the same architectures are reused
    retests_path, usual_retests = result_path(RETESTS, args.device, args.subnets), result_path(RETESTS, args.device)
    known_scratch = known_scratch_top1([result_path("sampling_strategies_subnets", args.device), detail_path],
                                       [usual_retests, retests_path])
    if args.scratch_retests:
        rows = pd.concat([scratch_retests(c, args.scratch_retests, known_scratch, retests_path, args.device,
                                          args.subnets, usual_retests if args.subnets != USUAL_PANEL else None)
                          for c in configs])
        agreement = retest_agreement(rows)
        _write(agreement, "sampling_strategies_scratch_agreement", args)
        print(agreement.to_string(index=False))
        ceiling = tau_ceiling(rows)
        _write(ceiling, "sampling_strategies_tau_ceiling", args)
        print(ceiling.to_string(index=False))
        versus_mean = against_scratch_mean(previous, rows)
        _write(versus_mean, "sampling_strategies_vs_scratch_mean", args)
        print(versus_mean.to_string(index=False))
        seeded = across_seeds(previous, rows)
        if not seeded.empty:
            _write(seeded, "sampling_strategies_seeds", args)
            print(seeded.to_string(index=False))
        figure = result_path("sampling_strategies_vs_scratch", args.device, args.subnets).with_suffix(".png")
        if plot_against_scratch(previous, rows, figure):
            print(f"plot: {figure}")
        return
    rows = previous[~previous["config"].isin(chosen)].to_dict("records")
    scratch_cache = {}
    for name in chosen:
        rows += kept_finetuning(bench_one(name, args, overrides, known_scratch, scratch_cache), previous)
        write_results(pd.DataFrame(rows), detail_path, quick=QUICK)
    summary = summarise(pd.DataFrame(rows))
    _write(summary, "sampling_strategies", args)
    print(summary.to_string(index=False))
    if len(seeds) > 1 and retests_path.exists():
        seeded = across_seeds(pd.DataFrame(rows), read_results(retests_path))
        _write(seeded, "sampling_strategies_seeds", args)
        print(seeded.to_string(index=False))


if __name__ == "__main__":
    main()
