"""Commands of the first stages: train, import, profile, measure, fit (registered with
:func:`elasticnas.cli.command`; helpers shared with the later stages live here too)."""

from __future__ import annotations

import argparse
from pathlib import Path

from elasticnas.command_registry import UsageError, command, out_arg, run_folder_arg
from elasticnas.core.errors import ConfigError
from elasticnas.core.run_layout import CONFIG, EVALUATIONS, LATENCY_CHECK

PRECISION_CHOICES = ("fp32", "int8")  # int8: the space searches float32 and int8 subnets jointly


def precision_override(flag: str) -> dict:
    """The space field a --precision flag sets (float32 spaces keep their default)."""
    return {} if flag == "fp32" else {"precisions": (8, 32)}


def runtime_names() -> list[str]:
    from elasticnas.hardware.runtimes import RUNTIMES

    return RUNTIMES.names()


def supernet_names() -> list[str]:
    from elasticnas.supernet import list_supernets

    return list_supernets()


def algorithm_names() -> list[str]:
    from elasticnas.search.algorithms import list_algorithms

    return list_algorithms()


def _number_list(text: str, convert, kind: str) -> tuple:
    try:
        return tuple(convert(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {kind}, got {text!r}") from None


def int_list(text: str) -> tuple[int, ...]:
    return _number_list(text, int, "integers")


def float_list(text: str) -> tuple[float, ...]:
    return _number_list(text, float, "numbers")


@command("train", "train a supernet once, with one sampling strategy, from a YAML config",
         "elasticnas train mnist_sandwich --out runs/mnist --set train.epochs=2 data.name=digits",
         writes=lambda args: [] if args.dry_run or args.out is None else [(args.out, True)])
def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="YAML path or a bundled config's name (default: mnist_quickstart; with --resume, the "
                        "run's own config.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (config, checkpoint, metrics); required "
                        "unless --dry-run")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint, with "
                        "the config it recorded (a CONFIG or --set given too must not change it)")
    parser.add_argument("--dry-run", action="store_true", help="check the config, data and supernet, print the "
                        "resolved config and write nothing")
    parser.add_argument("--init", type=Path, default=None, metavar="RUN_OR_CHECKPOINT",
                        help="start from this run's (or imported, or checkpoint file's) supernet instead of "
                        "random weights; same as init.source (see init.* in docs/howto.md)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="dotted overrides, e.g. train.epochs=2 sampler.name=uniform")
    parser.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from elasticnas.core.distributed import rank_and_world
    from elasticnas.experiment import load_experiment, train_experiment

    if args.out is None and not args.dry_run:
        raise UsageError("train needs --out RUN_FOLDER (or --dry-run to only check the config)")
    recorded = args.out / CONFIG if args.out is not None else None
    if args.resume and args.config is None and recorded.is_file():
        # the run folder records its config and overrides: --set may only restate them
        config = load_experiment(recorded, args.set)
    else:
        config = load_experiment(args.config, args.set)
    if args.init is not None:
        config = replace(config, init=replace(config.init, source=str(args.init)))
    if args.dry_run:
        return _dry_run(config)
    trainer, metrics = train_experiment(config, args.out, resume=args.resume)
    if rank_and_world()[0] == 0:
        print(metrics.round(3).to_string(index=False))
        print(f"run folder: {args.out} (metrics.csv, training_curves.png, checkpoint.pt)")


def _dry_run(config) -> None:
    import yaml

    from elasticnas.experiment import prepare_training
    from elasticnas.parents import with_parent_space

    if config.init.source:
        config = with_parent_space(config)
    # every check a run makes before its first step (the parent loaded into the supernet
    # included); nothing is written, so the run folder is a name only
    config, splits, trainer = prepare_training(config, Path("dry-run"), progress=False)
    print(yaml.safe_dump(config.to_dict(), sort_keys=False).rstrip())
    sizes = ", ".join(f"{name} {len(split)}" for name, split in (("train", splits.train), ("val", splits.val),
                                                                  ("test", splits.test)))
    shape = (f"windows of {splits.image_size} tokens, a vocabulary of {splits.num_classes}, corpus sha256 "
             f"{splits.sha256[:16]}" if splits.modality == "text" else
             f"images, {splits.num_classes} classes, {splits.in_channels} channels")
    print(f"# data {splits.name!r}: {sizes} {shape}; "
          f"supernet {config.supernet.name!r}: {sum(p.numel() for p in trainer.model.parameters()):,} parameters")


@command("import-ofa", "import a published Once-for-All MobileNetV3 supernet checkpoint as a run folder",
         "elasticnas import-ofa ofa_mbv3_d234_e346_k357_w1.0 --supernet ofa_mbv3_w10 --out runs/ofa_w10 "
         "--set data.root=/data/imagenet/val")
def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="the OFA file ({'state_dict': ...}); read weights-only")
    parser.add_argument("--supernet", required=True, choices=supernet_names(),
                        help="the preset it fills: ofa_mbv3_w10 for _w1.0 files, ofa_mbv3_w12 for _w1.2")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True, help="the run folder to create")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config of the run, e.g. data.root=/data/imagenet/val (an ImageFolder) for measure")
    parser.set_defaults(run=_run_import)


def _run_import(args: argparse.Namespace) -> None:
    from elasticnas.importing import import_checkpoint

    out = import_checkpoint(args.checkpoint, supernet=args.supernet, out=args.out, format="ofa",
                            num_classes=args.num_classes, overrides=args.set)
    print(f"imported {args.checkpoint} into {out} (config.yaml, supernet.safetensors); next: "
          f"elasticnas measure {out}, or elasticnas train CONFIG --init {out} to transfer it to your data")


@command("profile", "build a per-layer latency lookup table on this device",
         "elasticnas profile --supernet tiny_mbv3 --in-channels 1 --runtime onnxruntime --out runs/tables/cpu_ort",
         writes=out_arg, creates=True)
def _profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--supernet", choices=supernet_names(),
                        help="a registered supernet preset (needed unless --run is given or --out already holds a "
                             "table to --check)")
    parser.add_argument("--run", dest="space_of_run", type=Path, default=None, metavar="RUN",
                        help="the space of this run folder instead of a preset (e.g. an elasticized model's)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--resolutions", type=int_list, default=None,
                        help="comma-separated resolutions to cover (default: all of the space)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--runtime", default="torch", choices=runtime_names())
    parser.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES,
                        help="int8: also time every layer at int8 (a space searching float32 and int8)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's setting)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="passes over all layers; the median is kept")
    parser.add_argument("--calibrate", type=int, default=0, metavar="N",
                        help="measure N random subnets end to end among the layers and fit a linear correction")
    parser.add_argument("--raw", action="store_true",
                        help="predict from raw milliseconds instead of reference units (no speed normalisation)")
    parser.add_argument("--check", type=int, default=0, metavar="N",
                        help="measure N fresh subnets against the table in --out (built first if missing) and print "
                             "within-10%%, MAPE, tau and the machine's own round-to-round noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for latency_table.csv/.json")
    parser.set_defaults(run=_run_profile)


def _run_profile(args: argparse.Namespace) -> None:
    from elasticnas.core.run_layout import TABLE_JSON
    from elasticnas.hardware import LatencyTable
    from elasticnas.hardware.table_check import require_check_size

    if args.check:
        require_check_size(args.check)  # before a build that may take minutes
    if args.check and (args.out / TABLE_JSON).exists():
        table = LatencyTable.load(args.out)
    elif args.supernet is None and args.space_of_run is None:
        raise ConfigError(f"--supernet is needed to build a table ({args.out} holds none): one of "
                          f"{supernet_names()}, or --run RUN for the space of a run folder")
    elif args.supernet is not None and args.space_of_run is not None:
        raise ConfigError(f"give --supernet {args.supernet} or --run {args.space_of_run}, not both")
    else:
        space = _profiled_space(args)
        table = LatencyTable.build(space, device=args.device, runtime=args.runtime, batch_size=args.batch_size,
                                   resolutions=args.resolutions, threads=args.threads, warmup=args.warmup,
                                   repeats=args.repeats, rounds=args.rounds, seed=args.seed, out=args.out,
                                   calibrate=args.calibrate, normalise=not args.raw)
        print(f"latency table: {len(table.entries)} layers, resolutions {list(table.resolutions)}, "
              f"{table.metadata['runtime']} on {table.metadata['device_name']}, reference "
              f"{table.metadata['reference_ms']:.4g} ms -> {args.out}")
    if args.check:
        _check_profile(table, args)


def _profiled_space(args: argparse.Namespace):
    from dataclasses import replace

    from elasticnas.runs import run_space
    from elasticnas.supernet import create_space

    if args.supernet is not None:
        return create_space(args.supernet, num_classes=args.num_classes, in_channels=args.in_channels,
                            **precision_override(args.precision))
    space = run_space(args.space_of_run)
    return replace(space, **precision_override(args.precision)) if args.precision != "fp32" else space


def _check_profile(table, args: argparse.Namespace) -> None:
    from elasticnas.core.atomic import atomic_write_text
    from elasticnas.hardware.table_check import check_table, describe_check

    summary, rows = check_table(table, args.check, seed=args.seed)
    atomic_write_text(args.out / LATENCY_CHECK, rows.to_csv(index=False))
    print(describe_check(summary))
    print(f"per subnet: {args.out / LATENCY_CHECK}")


@command("measure", "measure subnets of a trained run spread over the MACs range (resumable)",
         "elasticnas measure runs/mnist --n 300 --runtime onnxruntime", writes=run_folder_arg)
def _measure_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN", help="a finished training run folder")
    parser.add_argument("--n", type=int, default=300, help="distinct subnets evaluations.csv should hold")
    parser.add_argument("--device", default="cpu", help="device for the latency table (cpu, cuda)")
    parser.add_argument("--runtime", default="torch", choices=runtime_names())
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_measure)


def _run_measure(args: argparse.Namespace) -> None:
    from elasticnas.measure import measure_run
    from elasticnas.quality_metric import quality_of
    from elasticnas.runs import run_space

    evaluations = measure_run(args.run_folder, args.n, seed=args.seed, device=args.device, runtime=args.runtime)
    metric = quality_of(run_space(args.run_folder))
    quality, latency = metric.of_row(evaluations), evaluations["table_latency_ms"]
    print(f"{len(evaluations)} subnets in {args.run_folder / EVALUATIONS}: {metric.label} "
          f"{quality.min():.{metric.digits}f}-{metric.format(quality.max())}, "
          f"table latency {latency.min():.3f}-{latency.max():.3f} ms")


@command("fit", "fit accuracy and latency predictors on a run's measured subnets and report their quality",
         "elasticnas fit runs/mnist --trials 40", writes=run_folder_arg)
def _fit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN", help="a run folder with evaluations.csv")
    parser.add_argument("--trials", type=int, default=40, help="optuna trials per predictor")
    parser.add_argument("--encoding", default="ordinal", choices=["ordinal", "onehot"])
    parser.add_argument("--folds", type=int, default=5, help="outer cross-validation folds for the report")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_fit)


def _run_fit(args: argparse.Namespace) -> None:
    from elasticnas.measure import describe_accuracy_noise, fit_run
    from elasticnas.quality_metric import quality_of
    from elasticnas.runs import run_space

    reports = fit_run(args.run_folder, n_trials=args.trials, seed=args.seed, encoding=args.encoding,
                      report_folds=args.folds)
    columns = ["target", "samples", "members", "kendall_tau", "spearman_rho", "rmse", "mape", "within", "tolerance"]
    print(reports[columns].round(3).to_string(index=False))
    print(describe_accuracy_noise(reports, quality_of(run_space(args.run_folder))))
    print(f"predictors and reports: {args.run_folder / 'predictors'}")
