"""The ``elasticnas`` command line.

User errors print one line and exit with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from elasticnas.core.errors import ConfigError, ElasticNASError

_COMMANDS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {}
# The folder each writing command locks (core/locking.py), and whether it may create it.
_WRITES: dict[str, tuple[Callable[[argparse.Namespace], Path], bool]] = {}


def command(name: str, help: str, example: str, writes: Callable[[argparse.Namespace], Path | list] | None = None,
            creates: bool = False):
    """Register a subcommand: the decorated function adds its arguments and sets ``run``;
    ``writes(args)`` names the folder it writes (or a list of ``(folder, may_create)``), held by
    one such command at a time."""

    def decorate(add_arguments):
        _COMMANDS[name] = (help, example, add_arguments)
        if writes is not None:
            _WRITES[name] = (writes, creates)
        return add_arguments

    return decorate


def _out(args: argparse.Namespace) -> Path:
    return args.out


def _run_folder(args: argparse.Namespace) -> Path:
    return args.run_folder


def _search_writes(args: argparse.Namespace) -> list[tuple[Path, bool]]:
    """The results folder; the run folder too when the search adds to it (a new latency table,
    measured subnets), so workers sharing one study can write their own --out side by side."""
    from elasticnas.measure import has_latency_table

    run, out = (args.run_folder, False), (args.out, True)
    if args.out is None:
        return [run]
    writes_run = args.real_evals or not has_latency_table(args.run_folder, args.device, args.runtime)
    return [run, out] if writes_run else [out]


PRECISION_CHOICES = ("fp32", "int8")  # int8: the space searches float32 and int8 subnets jointly


def precision_override(flag: str) -> dict:
    """The space field a --precision flag sets (float32 spaces keep their default)."""
    return {} if flag == "fp32" else {"precisions": (8, 32)}


def _runtimes() -> list[str]:
    from elasticnas.hardware.runtimes import RUNTIMES

    return RUNTIMES.names()


def _supernets() -> list[str]:
    from elasticnas.supernet import list_supernets

    return list_supernets()


def _algorithms() -> list[str]:
    from elasticnas.search.algorithms import list_algorithms

    return list_algorithms()


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


@command("train", "train a supernet once, with one sampling strategy, from a YAML config",
         "elasticnas train mnist_sandwich --out runs/mnist --set train.epochs=2 data.name=digits",
         writes=lambda args: [] if args.dry_run or args.out is None else [(args.out, True)])
def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="YAML path or a name in experiments/ (default: mnist_sandwich)")
    parser.add_argument("--out", type=Path, default=None, help="run folder (config, checkpoint, metrics); required "
                        "unless --dry-run")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--dry-run", action="store_true", help="check the config, data and supernet, print the "
                        "resolved config and write nothing")
    parser.add_argument("--init", type=Path, default=None, metavar="RUN_OR_CHECKPOINT",
                        help="start from this run's (or imported, or checkpoint file's) supernet instead of "
                        "random weights; same as init.source (see init.* in the README)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="dotted overrides, e.g. train.epochs=2 sampler.name=uniform")
    parser.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from elasticnas.core.distributed import rank_and_world
    from elasticnas.experiment import load_experiment, train_experiment

    if args.out is None and not args.dry_run:
        raise UsageError("train needs --out RUN_FOLDER (or --dry-run to only check the config)")
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

    from elasticnas.experiment import build_run
    from elasticnas.parents import parent_weights_file

    splits, supernet = build_run(config)
    if config.init.source:
        parent_weights_file(config.init.source)
    print(yaml.safe_dump(config.to_dict(), sort_keys=False).rstrip())
    sizes = ", ".join(f"{name} {len(split)}" for name, split in (("train", splits.train), ("val", splits.val),
                                                                  ("test", splits.test)))
    print(f"# data {splits.name!r}: {sizes} images, {splits.num_classes} classes, {splits.in_channels} channels; "
          f"supernet {config.supernet.name!r}: {sum(p.numel() for p in supernet.parameters()):,} parameters")


@command("import-ofa", "import a published Once-for-All MobileNetV3 supernet checkpoint as a run folder",
         "elasticnas import-ofa ofa_mbv3_d234_e346_k357_w1.0 --supernet ofa_mbv3_w10 --out runs/ofa_w10 "
         "--set data.root=/data/imagenet/val")
def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="the OFA file ({'state_dict': ...}); read weights-only")
    parser.add_argument("--supernet", required=True, choices=_supernets(),
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
         writes=_out, creates=True)
def _profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--supernet", choices=_supernets(),
                        help="a registered supernet preset (needed unless --out already holds a table to --check)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--in-channels", type=int, default=3)
    parser.add_argument("--resolutions", type=_int_list, default=None,
                        help="comma-separated resolutions to cover (default: all of the space)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--runtime", default="torch", choices=_runtimes())
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
    from elasticnas.hardware import LatencyTable
    from elasticnas.hardware.lookup import TABLE_JSON
    from elasticnas.hardware.table_check import require_check_size
    from elasticnas.supernet import create_space

    if args.check:
        require_check_size(args.check)  # before a build that may take minutes
    if args.check and (args.out / TABLE_JSON).exists():
        table = LatencyTable.load(args.out)
    elif args.supernet is None:
        raise ConfigError(f"--supernet is needed to build a table ({args.out} holds none); choose from "
                          f"{_supernets()}")
    else:
        space = create_space(args.supernet, num_classes=args.num_classes, in_channels=args.in_channels,
                             **precision_override(args.precision))
        table = LatencyTable.build(space, device=args.device, runtime=args.runtime, batch_size=args.batch_size,
                                   resolutions=args.resolutions, threads=args.threads, warmup=args.warmup,
                                   repeats=args.repeats, rounds=args.rounds, seed=args.seed, out=args.out,
                                   calibrate=args.calibrate, normalise=not args.raw)
        print(f"latency table: {len(table.entries)} layers, resolutions {list(table.resolutions)}, "
              f"{table.metadata['runtime']} on {table.metadata['device_name']}, reference "
              f"{table.metadata['reference_ms']:.4g} ms -> {args.out}")
    if args.check:
        _check_profile(table, args)


def _check_profile(table, args: argparse.Namespace) -> None:
    from elasticnas.core.atomic import atomic_write_text
    from elasticnas.hardware.table_check import check_table, describe_check

    summary, rows = check_table(table, args.check, seed=args.seed)
    atomic_write_text(args.out / "latency_check.csv", rows.to_csv(index=False))
    print(describe_check(summary))
    print(f"per subnet: {args.out / 'latency_check.csv'}")


@command("measure", "measure subnets of a trained run spread over the MACs range (resumable)",
         "elasticnas measure runs/mnist --n 300 --runtime onnxruntime", writes=_run_folder)
def _measure_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN", help="a finished training run folder")
    parser.add_argument("--n", type=int, default=300, help="distinct subnets evaluations.csv should hold")
    parser.add_argument("--device", default="cpu", help="device for the latency table (cpu, cuda)")
    parser.add_argument("--runtime", default="torch", choices=_runtimes())
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_measure)


def _run_measure(args: argparse.Namespace) -> None:
    from elasticnas.measure import measure_run

    evaluations = measure_run(args.run_folder, args.n, seed=args.seed, device=args.device, runtime=args.runtime)
    top1, latency = evaluations["val_top1"], evaluations["table_latency_ms"]
    print(f"{len(evaluations)} subnets in {args.run_folder / 'evaluations.csv'}: validation top-1 "
          f"{top1.min():.2f}-{top1.max():.2f}%, table latency {latency.min():.3f}-{latency.max():.3f} ms")


@command("fit", "fit accuracy and latency predictors on a run's measured subnets and report their quality",
         "elasticnas fit runs/mnist --trials 40", writes=_run_folder)
def _fit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN", help="a run folder with evaluations.csv")
    parser.add_argument("--trials", type=int, default=40, help="optuna trials per predictor")
    parser.add_argument("--encoding", default="ordinal", choices=["ordinal", "onehot"])
    parser.add_argument("--folds", type=int, default=5, help="outer cross-validation folds for the report")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_fit)


def _run_fit(args: argparse.Namespace) -> None:
    from elasticnas.measure import describe_accuracy_noise, fit_run

    reports = fit_run(args.run_folder, n_trials=args.trials, seed=args.seed, encoding=args.encoding,
                      report_folds=args.folds)
    columns = ["target", "samples", "members", "kendall_tau", "spearman_rho", "rmse", "mape", "within", "tolerance"]
    print(reports[columns].round(3).to_string(index=False))
    print(describe_accuracy_noise(reports))
    print(f"predictors and reports: {args.run_folder / 'predictors'}")


def _float_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@command("search", "search the accuracy-latency Pareto front of a run's space under latency budgets",
         "elasticnas search runs/mnist --objectives accuracy,latency --latency-budget-ms 3 --latency-budget-ms 5 "
         "--runtime onnxruntime --algorithm nsga2 --real-evals 200 --seed 0", writes=_search_writes)
def _search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN", help="a trained run (fitted predictors unless "
                        "--real-evals)")
    parser.add_argument("--objectives", type=_float_list, default=["accuracy", "latency"],
                        help="comma-separated: accuracy, latency, macs, params, size_bytes, peak_activation_bytes")
    parser.add_argument("--latency-budget-ms", type=float, action="append", default=[], dest="budgets",
                        help="a latency budget in ms (repeat for several); the best subnet under each is saved")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", default="torch", choices=_runtimes())
    parser.add_argument("--algorithm", default="nsga2", choices=_algorithms())
    parser.add_argument("--real-evals", type=int, default=0,
                        help="subnets to measure on the supernet (predictor-in-the-loop); 0: predictor only")
    parser.add_argument("--predicted-evals", type=int, default=20_000, help="evaluations on predictions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="result folder (default RUN/search/...)")
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="a database URL (e.g. postgresql://user@host/db) holding a study that several search "
                             "workers share: each with its own --seed and --out (optuna algorithms)")
    parser.add_argument("--study", default="search", help="the study's name in --storage")
    parser.add_argument("--heartbeat-s", type=int, default=10,
                        help="with --storage: a worker silent for twice this long has its trial retried")
    parser.set_defaults(run=_run_search)


def _run_search(args: argparse.Namespace) -> None:
    from elasticnas.searching import best_per_budget, search_run

    result, folder = search_run(args.run_folder, objectives=args.objectives, latency_budgets_ms=args.budgets,
                                device=args.device, runtime=args.runtime, algorithm=args.algorithm,
                                real_evals=args.real_evals, predicted_evals=args.predicted_evals, seed=args.seed,
                                out=args.out, storage=args.storage, study=args.study, heartbeat_s=args.heartbeat_s)
    print(f"{len(result.archive)} subnets evaluated, {len(result.front)} on the front, "
          f"hypervolume {result.hypervolume:.4g}")
    if args.budgets:
        table = best_per_budget(result, args.budgets).drop(columns="arch")
        print(table.round(4).to_string(index=False))
    print(f"results: {folder} (archive.csv, front.csv, pareto.png, best_latency_ms_*.json)")


@command("export", "export a chosen subnet: safetensors + arch.json, torch.export program, ONNX, and a measured report",
         "elasticnas export runs/mnist --budget-ms 3 --formats safetensors,torch_export,onnx --out exports/3ms",
         writes=_run_folder)
def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN", help="a trained run folder")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--budget-ms", type=float, help="the most accurate searched subnet within this latency")
    which.add_argument("--arch-json", type=Path, help="a JSON file holding an architecture (or {'arch': ...})")
    which.add_argument("--pareto-index", type=int, help="row of the search's front.csv (0: most accurate)")
    parser.add_argument("--search", type=Path, default=None, help="search folder (default: the run's latest)")
    parser.add_argument("--formats", default="safetensors,torch_export,onnx",
                        help="comma-separated: safetensors (always), torch_export (model.pt2), onnx, torchscript "
                             "(deprecated in torch)")
    parser.add_argument("--device", default="cpu", help="device the latency is measured on")
    parser.add_argument("--runtime", default="torch", choices=_runtimes())
    parser.add_argument("--out", type=Path, required=True, help="export folder")
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> None:
    from elasticnas.export import parse_formats
    from elasticnas.pipeline import choose_arch, export_from_run, export_within_budget
    from elasticnas.runs import run_space

    formats = parse_formats(args.formats)
    space = run_space(args.run_folder)
    if args.budget_ms is not None:
        report = export_within_budget(args.run_folder, args.budget_ms, args.out, search_folder=args.search,
                                      formats=formats, device=args.device, runtime=args.runtime)
        for tried in report["budget_tries"][:-1]:
            print(f"front subnet {tried['front_rank']} measured {tried['measured_ms']:.3f} ms > {args.budget_ms} ms "
                  f"on {args.device}/{args.runtime}: trying the next one down the front")
        arch = space.canonical(report["arch"])
    else:
        arch = choose_arch(args.run_folder, space, arch_json=args.arch_json, pareto_index=args.pareto_index,
                           search_folder=args.search)
        report = export_from_run(args.run_folder, arch, args.out, formats=formats, device=args.device,
                                 runtime=args.runtime)
    if "int8_accuracy_drop" in report:
        print(f"int8 model: test top-1 {report['test_top1']:.2f}% against {report['test_top1_float32']:.2f}% "
              f"at float32 (drop {report['int8_accuracy_drop']:+.2f} points)")
    print(f"exported {arch.to_json()}\n  test top-1 {report['test_top1']:.2f}%, "
          f"latency {report['latency_ms_measured']:.3f} ms measured / {report['latency_ms_predicted']:.3f} ms "
          f"predicted ({args.runtime}, {args.device}), "
          f"{report['macs']:,} MACs, {report['params']:,} params\n  files in {args.out}: {', '.join(report['files'])}")


def _finetune_out(args: argparse.Namespace) -> Path:
    from elasticnas.finetuning import finetuned_folder

    return args.out or finetuned_folder(args.export_dir)


@command("finetune", "train an exported subnet further, distilled from its supernet's largest subnet",
         "elasticnas finetune runs/quickstart/exports/budget_0.5ms --epochs 3", writes=_finetune_out, creates=True)
def _finetune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("export_dir", type=Path, metavar="EXPORT_DIR", help="a folder written by `elasticnas export`")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=None, help="initial learning rate, cosine-decayed to zero "
                        "(default: a tenth of the run's peak learning rate)")
    parser.add_argument("--run", type=Path, default=None, dest="from_run",
                        help="the run it was exported from (default: the one its report.json names, else the "
                        "folder above exports/)")
    parser.add_argument("--out", type=Path, default=None, help="new export folder (default: EXPORT_DIR_finetuned); "
                        "an interrupted fine-tuning resumes there")
    parser.set_defaults(run=_run_finetune)


def _run_finetune(args: argparse.Namespace) -> None:
    from elasticnas.finetuning import finetune_export

    report = finetune_export(args.export_dir, epochs=args.epochs, out=_finetune_out(args), run_folder=args.from_run,
                             lr=args.lr)
    print(f"fine-tuned {args.epochs} epochs (lr {report['finetune']['lr']:g}): validation top-1 "
          f"{report['val_top1_before']:.2f}% -> {report['val_top1']:.2f}%, test top-1 "
          f"{report['test_top1_before']:.2f}% -> {report['test_top1']:.2f}% ({report['test_top1_gain']:+.2f} points)"
          f"\n  files in {_finetune_out(args)}: {', '.join(report['files'])}")


@command("quickstart", "the whole pipeline on the bundled MNIST subset: train, profile, measure, fit, search, export",
         "elasticnas quickstart --out runs/quickstart", writes=_out, creates=True)
def _quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="run folder (resumes if present)")
    parser.add_argument("--supernet", default=None, choices=_supernets(),
                        help="supernet preset to train (default: tiny_mbv3), with its bundled "
                        "sandwich recipe (experiments/mnist_*.yaml) where there is one")
    parser.add_argument("--subnets", type=int, default=100, help="subnets to measure for the predictors")
    parser.add_argument("--runtime", default="torch", choices=_runtimes())
    parser.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES,
                        help="int8: search float32 and int8 subnets jointly (static quantization by the "
                             "runtime's own tool; --runtime onnxruntime)")
    parser.add_argument("--finetune-epochs", type=int, default=0,
                        help="also fine-tune each exported subnet for this many epochs (elasticnas finetune)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_quickstart)


def _run_quickstart(args: argparse.Namespace) -> None:
    from elasticnas.pipeline import quickstart

    summary = quickstart(args.out, supernet=args.supernet, subnets=args.subnets, runtime=args.runtime, seed=args.seed,
                         precision=args.precision, finetune_epochs=args.finetune_epochs)
    print(summary.round(3).to_string(index=False))


@command("report", "re-draw a run's plots and tables from its CSV and JSON files",
         "elasticnas report runs/quickstart", writes=_run_folder)
def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN")
    parser.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> None:
    from elasticnas.pipeline import redraw
    from elasticnas.runs import run_config

    run_config(args.run_folder)
    for path in redraw(args.run_folder):
        print(path)


class UsageError(ElasticNASError):
    """A command line argparse refused (unknown command, missing or invalid argument)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line through main's error path instead of usage + exit
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="elasticnas", description="Train once, predict, search, export.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, example, add_arguments) in _COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text, epilog=f"example:\n  {example}",
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--debug", action="store_true", help="show tracebacks of errors")
        add_arguments(sub)
    return parser


def _writer_lock(args: argparse.Namespace, argv: Sequence[str]):
    import os
    from contextlib import ExitStack, nullcontext

    from elasticnas.core.locking import exclusive_writer

    if args.command not in _WRITES or os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 writes
        return nullcontext()
    folders, creates = _WRITES[args.command]
    folders = folders(args)
    stack = ExitStack()
    try:
        for folder, create in folders if isinstance(folders, list) else [(folders, creates)]:
            stack.enter_context(exclusive_writer(folder, " ".join(["elasticnas", *argv]), create=create))
    except BaseException:
        stack.close()
        raise
    return stack


def _one_line(text: str) -> str:
    """User text (a key, a path) may hold line breaks or other control characters: show them escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(text.strip().split("\n")))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        if "--debug" in argv:
            raise
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return 2
    from elasticnas.supernet.training import TrainingInterrupted

    try:
        with _writer_lock(args, argv):
            args.run(args)
    except TrainingInterrupted as stop:
        print(f"elasticnas {args.command}: {stop}", file=sys.stderr)
        return 130
    except (ElasticNASError, FileNotFoundError, PermissionError) as error:
        if args.debug:
            raise
        print(f"elasticnas {args.command}: error: {_one_line(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"elasticnas {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

