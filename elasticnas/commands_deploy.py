"""Commands of the later stages: search, export, finetune, quickstart, report (registered
with :func:`elasticnas.cli.command`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from elasticnas.command_registry import command, out_arg, run_folder_arg
from elasticnas.commands_train import PRECISION_CHOICES, algorithm_names, runtime_names, supernet_names


def _search_writes(args: argparse.Namespace) -> list[tuple[Path, bool]]:
    """The results folder; the run folder too when the search adds to it (a new latency table,
    measured subnets), so workers sharing one study can write their own --out side by side."""
    from elasticnas.measure import has_latency_table

    run, out = (args.run_folder, False), (args.out, True)
    if args.out is None:
        return [run]
    phases = args.phase_budgets or any(name.startswith("latency_") for name in args.objectives)  # may build tables
    writes_run = args.real_evals or phases or not has_latency_table(args.run_folder, args.device, args.runtime)
    return [run, out] if writes_run else [out]


def _float_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _phase_budget(text: str) -> tuple[str, float]:
    phase, _, budget = text.partition("=")
    try:
        return phase.strip(), float(budget)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PHASE=MS (e.g. prefill=20)") from None


@command("search", "search the accuracy-latency Pareto front of a run's space under latency budgets",
         "elasticnas search runs/mnist --objectives accuracy,latency --latency-budget-ms 3 --latency-budget-ms 5 "
         "--runtime onnxruntime --algorithm nsga2 --real-evals 200 --seed 0", writes=_search_writes)
def _search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN", help="a trained run (fitted predictors unless "
                        "--real-evals)")
    parser.add_argument("--objectives", type=_float_list, default=["accuracy", "latency"],
                        help="comma-separated: accuracy (a language model's bits per byte, also named "
                        "bits_per_byte), latency, macs, params, size_bytes, peak_activation_bytes, "
                        "memory_bytes (weights plus a language model's KV cache)")
    parser.add_argument("--latency-budget-ms", type=float, action="append", default=[], dest="budgets",
                        help="a latency budget in ms (repeat for several); the best subnet under each is saved")
    parser.add_argument("--max-memory-mb", type=float, default=None,
                        help="only subnets whose weights plus KV cache (at their context) fit in this many MiB")
    parser.add_argument("--phase-budget-ms", type=_phase_budget, action="append", default=[], dest="phase_budgets",
                        metavar="PHASE=MS", help="where the space times phases (a language model: prefill, decode), "
                        "keep that phase's table latency within MS, e.g. prefill=20 (repeat for several); the "
                        "objective latency_<phase> searches it")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", default="torch", choices=runtime_names())
    parser.add_argument("--algorithm", default="nsga2", choices=algorithm_names())
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
                                memory_budget_mb=args.max_memory_mb, phase_budgets_ms=dict(args.phase_budgets),
                                device=args.device, runtime=args.runtime,
                                algorithm=args.algorithm,
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
         writes=run_folder_arg)
def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN", help="a trained run folder")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--budget-ms", type=float, help="the most accurate searched subnet within this latency")
    which.add_argument("--arch-json", type=Path, help="a JSON file holding an architecture (or {'arch': ...})")
    which.add_argument("--pareto-index", type=int, help="row of the search's front.csv (0: most accurate)")
    parser.add_argument("--search", type=Path, default=None, help="search folder (default: the run's latest)")
    parser.add_argument("--check-top-k", type=int, default=5,
                        help="with --budget-ms, where the subnet predicted best is predicted above every measured "
                             "subnet of the run: measure this many searched subnets predicted best within the budget "
                             "and export the most accurate on validation, the run's measured subnets included "
                             "(0: always the one predicted best)")
    parser.add_argument("--formats", default="safetensors,torch_export,onnx",
                        help="comma-separated: safetensors (always), torch_export (model.pt2), onnx, torchscript "
                             "(deprecated in torch)")
    parser.add_argument("--device", default="cpu", help="device the latency is measured on")
    parser.add_argument("--runtime", default="torch", choices=runtime_names())
    parser.add_argument("--out", type=Path, required=True, help="export folder")
    parser.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> None:
    from elasticnas.export import parse_formats
    from elasticnas.pipeline import choose_arch, export_from_run, export_within_budget
    from elasticnas.quality_metric import quality_of
    from elasticnas.runs import run_space

    formats = parse_formats(args.formats)
    space = run_space(args.run_folder)
    if args.budget_ms is not None:
        report = export_within_budget(args.run_folder, args.budget_ms, args.out, search_folder=args.search,
                                      formats=formats, device=args.device, runtime=args.runtime,
                                      check_top_k=args.check_top_k)
        if report["chosen_on"] != "prediction":
            metric = quality_of(space)
            print(f"the subnet predicted best, at {metric.format(report['predicted_quality_of_best'])}, is "
                  f"{metric.beyond} every measured subnet "
                  f"({metric.format(report['best_measured_quality'])}): chosen on measured {metric.label} from "
                  f"{report['candidates']} candidates: {report['chosen_from']}, "
                  f"{metric.format(report[metric.column])} (SE {report[metric.noise_columns[0]]:.{metric.digits}f})")
        for tried in report["budget_tries"][:-1]:
            print(f"candidate {tried['rank']} measured {tried['measured_ms']:.3f} ms > {args.budget_ms} ms "
                  f"on {args.device}/{args.runtime}: trying the next one down the list")
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
    from elasticnas.export_finetuning import finetuned_folder

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
    from elasticnas.export_finetuning import finetune_export

    report = finetune_export(args.export_dir, epochs=args.epochs, out=_finetune_out(args), run_folder=args.from_run,
                             lr=args.lr)
    print(f"fine-tuned {args.epochs} epochs (lr {report['finetune']['lr']:g}): validation top-1 "
          f"{report['val_top1_before']:.2f}% -> {report['val_top1']:.2f}%, test top-1 "
          f"{report['test_top1_before']:.2f}% -> {report['test_top1']:.2f}% ({report['test_top1_gain']:+.2f} points)"
          f"\n  files in {_finetune_out(args)}: {', '.join(report['files'])}")


@command("quickstart", "the whole pipeline on the bundled MNIST subset: train, profile, measure, fit, search, export",
         "elasticnas quickstart --out runs/quickstart", writes=out_arg, creates=True)
def _quickstart_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="run folder (resumes if present)")
    parser.add_argument("--supernet", default=None, choices=supernet_names(),
                        help="supernet preset to train (default: tiny_mbv3, with the bundled mnist_quickstart "
                        "config); another with its bundled sandwich recipe (mnist_*.yaml; text_*.yaml for a "
                        "language model) where there is one")
    parser.add_argument("--config", default=None,
                        help="experiment config to train instead (a bundled config's name or a YAML path)")
    parser.add_argument("--subnets", type=int, default=100, help="subnets to measure for the predictors")
    parser.add_argument("--runtime", default="torch", choices=runtime_names())
    parser.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES,
                        help="int8: search float32 and int8 subnets jointly (static quantization by the "
                             "runtime's own tool: --runtime onnxruntime, openvino or executorch)")
    parser.add_argument("--finetune-epochs", type=int, default=0,
                        help="also fine-tune each exported subnet for this many epochs (elasticnas finetune)")
    parser.add_argument("--table-repeats", type=int, default=None,
                        help="timings per layer of the latency table (default 10; elasticnas profile --repeats)")
    parser.add_argument("--table-rounds", type=int, default=None,
                        help="passes over the latency table's layers (default 2; elasticnas profile --rounds)")
    parser.add_argument("--trials", type=int, default=None, help="optuna trials per predictor (default 12)")
    parser.add_argument("--report-folds", type=int, default=None,
                        help="outer folds of the predictors' held-out report (default 3)")
    parser.add_argument("--check-top-k", type=int, default=5,
                        help="where a budget's best prediction is above every measured subnet: searched subnets "
                             "measured before its export is chosen on validation top-1 (0: always on the prediction)")
    parser.add_argument("--max-memory-mb", type=float, default=None,
                        help="search and export only subnets whose weights plus KV cache fit in this many MiB "
                             "(default: none for an image model; a language model's is placed among its measured "
                             "subnets, 70%% of the way up)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=_run_quickstart)


def _run_quickstart(args: argparse.Namespace) -> None:
    from elasticnas.pipeline import quickstart

    chosen = {name: getattr(args, name) for name in ("table_repeats", "table_rounds", "trials", "report_folds")}
    summary = quickstart(args.out, supernet=args.supernet, config=args.config, subnets=args.subnets,
                         runtime=args.runtime, seed=args.seed,
                         precision=args.precision, finetune_epochs=args.finetune_epochs,
                         check_top_k=args.check_top_k, max_memory_mb=args.max_memory_mb,
                         **{name: value for name, value in chosen.items() if value is not None})
    print(summary.round(3).to_string(index=False))


@command("report", "re-draw a run's plots and tables from its CSV and JSON files",
         "elasticnas report runs/quickstart", writes=run_folder_arg)
def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_folder", type=Path, metavar="RUN")
    parser.set_defaults(run=_run_report)


def _run_report(args: argparse.Namespace) -> None:
    from elasticnas.drawings import redraw
    from elasticnas.runs import run_config

    run_config(args.run_folder)
    for path in redraw(args.run_folder):
        print(path)
