"""The whole pipeline from a run folder: export a chosen subnet with its report, quickstart.

Each stage writes into the run folder (layout in :mod:`elasticnas.runs`) and skips or
resumes what is already there, so an interrupted quickstart picks up where it stopped.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from elasticnas.accuracy_check import best_measured_quality, checked_candidates
from elasticnas.budget import first_within, front_under
from elasticnas.core.atomic import atomic_write_json, atomic_write_text
from elasticnas.core.config import require_range
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import read_csv, read_json, reading
from elasticnas.core.run_layout import (
    ACCURACY_PREDICTOR,
    ARCH_JSON,
    ARCHIVE,
    CANDIDATES,
    CHECKPOINT,
    EXPORTS,
    FRONT,
    METRICS,
    PARETO_PLOT,
    PREDICTOR_REPORTS,
    PREDICTORS,
    REPORT,
    SLICES,
    SUMMARY,
)
from elasticnas.core.staging import check_replaceable, staged_folder
from elasticnas.export import FORMATS, deployed_accuracy, load_subnet, write_export
from elasticnas.hardware.counting import count_all
from elasticnas.hardware.latency import measure_archs
from elasticnas.hardware.quantize import require_int8
from elasticnas.hardware.runtimes import check_runtime
from elasticnas.measure import describe_accuracy_noise, fit_run, latency_table_for, measure_run, read_evaluations
from elasticnas.predictors import load_predictor
from elasticnas.quality_metric import TOP1, QualityMetric, quality_of
from elasticnas.runs import latest_search, load_trained, read_metrics, run_pointer
from elasticnas.supernet.arch import PRECISIONS, Arch
from elasticnas.supernet.evaluation import calibrated_subnet


def choose_arch(run_folder: Path, space, *, budget_ms: float | None = None, arch_json: str | Path | None = None,
                pareto_index: int | None = None, search_folder: Path | None = None) -> Arch:
    """The architecture named by exactly one of a latency budget (the most accurate *predicted* within it),
    a JSON file or a front index."""
    given = [x is not None for x in (budget_ms, arch_json, pareto_index)]
    if sum(given) != 1:
        raise ConfigError("choose the subnet with exactly one of --budget-ms, --arch-json, --pareto-index")
    if arch_json is not None:
        with reading(arch_json, "architecture JSON"):
            data = read_json(arch_json, "architecture JSON")
            return space.canonical(data.get("arch", data) if isinstance(data, dict) else data)
    folder = search_folder or latest_search(run_folder)
    front = read_csv(folder / FRONT, "search front", columns=("arch",))
    if pareto_index is not None:
        if not 0 <= pareto_index < len(front):
            raise ConfigError(f"--pareto-index {pareto_index} is outside the front of {folder} "
                              f"(0..{len(front) - 1})")
        return space.canonical(front["arch"].iloc[pareto_index])
    return front_under(folder / ARCHIVE, budget_ms, space)[0][0]  # predicted best; see export_within_budget


def export_from_run(run_folder: str | Path, arch: Arch, out: str | Path, *, formats=FORMATS, device: str = "cpu",
                    runtime: str = "torch", threads: int | None = None, run=None, measured_ms: float | None = None,
                    extra: dict | None = None, files: dict[str, str] | None = None) -> dict:
    """Export ``arch`` with BN recalibrated, then measure it: test top-1, latency (measured next
    to the table's prediction, unless ``measured_ms`` was just taken), MACs, params, size.
    Writes report.json (with ``extra``) beside the model, and the text ``files`` given.

    The folder ``out`` appears whole, report.json included, or not at all; a previous export
    there is replaced whole (:mod:`elasticnas.core.staging`). ``out`` may not be the run
    folder nor hold it."""
    check_runtime(runtime, device)  # a missing extra is refused before any work
    run_folder, out = Path(run_folder), check_export_out(run_folder, out)
    run = run or load_trained(run_folder)
    with staged_folder(out, marker=ARCH_JSON) as stage:
        for name, text in (files or {}).items():
            atomic_write_text(stage / name, text)
        return _export_report(run, arch, stage, out, formats=formats, device=device, runtime=runtime,
                              threads=threads, measured_ms=measured_ms, extra=extra)


def check_export_out(run_folder: str | Path, out: str | Path) -> Path:
    """``out``, refused where it is the run folder or holds it (an export replaces its folder whole)."""
    out, run_folder = Path(out), Path(run_folder)
    resolved, run = out.resolve(), run_folder.resolve()
    if resolved == run or resolved in run.parents:
        raise ConfigError(f"--out {out} is the run folder or holds it; an export replaces its folder whole, so "
                          f"give a folder of its own, e.g. {run_folder / EXPORTS / 'NAME'}")
    check_replaceable(out, ARCH_JSON, "export")
    return out


def _export_report(run, arch: Arch, stage: Path, out: Path, *, formats, device: str, runtime: str,
                   threads: int | None, measured_ms: float | None, extra: dict | None) -> dict:
    """Export ``arch`` into ``stage``, measure it, and write its report there, last."""
    run_folder, space = run.folder, run.space
    arch = space.canonical(arch)
    test = run.eval_data("test")
    model = calibrated_subnet(run.supernet, arch, test)
    calibration, images = test.at(arch.resolution, torch.device("cpu"))
    written = write_export(model, space, arch, stage, formats=formats, calibration_images=calibration,
                           int8_runtime=runtime)  # an int8 subnet deploys where its latency was measured
    reloaded = load_subnet(stage)
    with torch.no_grad():
        reference = model(images[:8])
    accuracy = deployed_accuracy(stage, arch, {"test": (images, test.labels)}, threads, model=reloaded,
                                 bits=space.modality == "text")
    table = latency_table_for(run_folder, space, device=device, runtime=runtime, check_speed=True)
    now = table.at_speed(table.current_reference_ms) if table.normalised and table.current_reference_ms else table
    measured = measured_ms if measured_ms is not None else float(measure_archs(
        space, [arch], device=device, runtime=runtime, threads=threads, models=[reloaded], progress=False)[0])
    costs = {k: int(v[0]) for k, v in count_all(space, [arch]).items()}
    report = {
        "arch": arch.to_dict(), "supernet": space.name, "space_fingerprint": space.fingerprint,
        **run_pointer(run_folder, out),
        **accuracy, "test_images": int(len(test.labels)), "precision": PRECISIONS[arch.precision],
        "latency_ms_measured": measured, "latency_ms_predicted": float(table.predict([arch])[0]),
        "latency_ms_predicted_at_current_speed": float(now.predict([arch])[0]),
        "reference_ms_at_build": table.metadata.get("reference_ms"), "reference_ms_now": table.current_reference_ms,
        "device": device, "runtime": runtime, "device_name": table.metadata.get("device_name"),
        **costs, "reloaded_equals_supernet_subnet": bool(torch.equal(reloaded(images[:8]), reference)),
        **written, **(extra or {}),
    }
    atomic_write_json(stage / REPORT, report)
    return report


def check_top_k_allowed(check_top_k: int) -> None:
    if isinstance(check_top_k, bool) or not isinstance(check_top_k, int) or check_top_k < 0:
        raise ConfigError(f"--check-top-k is the number of searched subnets measured before an export is chosen: "
                          f"0 (choose on the prediction) or more, but got {check_top_k!r}")


def export_within_budget(run_folder: str | Path, budget_ms: float, out: str | Path, *,
                         search_folder: Path | None = None, device: str = "cpu", runtime: str = "torch",
                         threads: int | None = None, run=None, formats=FORMATS, max_tries: int = 8,
                         strict: bool = True, check_top_k: int = 5, memory_mb: float | None = None) -> dict:
    """Export the most accurate subnet that *measures* within ``budget_ms`` on ``device``/``runtime``.

    "Most accurate" is predicted, down the searched front, unless the subnet predicted best is
    predicted above every measured subnet of the run: then, with ``check_top_k`` > 0, it is
    measured, among the ``check_top_k`` searched subnets predicted best and the run's measured
    subnets predicted within the budget (:mod:`elasticnas.accuracy_check`; the list is written
    to ``candidates.csv`` beside the export). The walk of :mod:`elasticnas.budget` then takes the
    first candidate that measures within the budget; with ``strict=False`` the fastest one tried
    when none does (the report says so). ``memory_mb`` keeps to subnets whose weights plus KV
    cache fit in that many MiB (exact from the architecture, not measured).
    """
    check_top_k_allowed(check_top_k)
    require_range("--budget-ms", budget_ms, above=0)
    check_runtime(runtime, device)
    run_folder, out = Path(run_folder), check_export_out(run_folder, out)
    run = run or load_trained(run_folder)
    folder = search_folder or latest_search(run_folder)
    extra_files = {}
    candidates = front_under(folder / ARCHIVE, budget_ms, run.space, memory_mb)
    metric = quality_of(run.space)
    best_measured = best_measured_quality(run_folder, metric)
    extra = {"budget_ms": budget_ms, "memory_mb": memory_mb, "check_top_k": check_top_k,
             "quality_metric": metric.column, "predicted_quality_of_best": candidates[0].predicted_quality,
             "best_measured_quality": best_measured, "chosen_on": "prediction"}
    checks = None
    if check_top_k and metric.better(candidates[0].predicted_quality, best_measured):
        checks = checked_candidates(run_folder, run, candidates, budget_ms, top_k=check_top_k, device=device,
                                    runtime=runtime, memory_mb=memory_mb)
        candidates = [(run.space.canonical(text), ms) for text, ms in zip(checks["arch"], checks["predicted_ms"],
                                                                           strict=True)]
        extra_files = {CANDIDATES: checks.to_csv(index=False)}
    arch, measured, tried = first_within(run.space, candidates, budget_ms, device=device, runtime=runtime,
                                         threads=threads, max_tries=max_tries, strict=strict)
    rank = int(tried.loc[tried["arch"] == arch.to_json(), "rank"].iloc[0])
    extra.update({"rank": rank, "within_budget": measured <= budget_ms, "budget_tries": tried.to_dict("records")})
    if checks is not None:
        row = checks.iloc[rank]
        extra.update({"chosen_on": f"measured {metric.label}", "chosen_from": row["source"],
                      "candidates": len(checks), metric.column: float(row[metric.column]),
                      metric.noise_columns[0]: float(row[metric.noise_columns[0]])})
    return export_from_run(run_folder, arch, out, formats=formats, device=device, runtime=runtime, threads=threads,
                           run=run, measured_ms=measured, extra=extra, files=extra_files)


def quickstart(out: str | Path = "runs/quickstart", *, supernet: str | None = None, config: str | None = None,
               overrides: list[str] = (), subnets: int = 100, trials: int = 12, predicted_evals: int = 20_000,
               runtime: str = "torch", seed: int = 0, progress: bool = True, log=print,
               precision: str = "fp32", finetune_epochs: int = 0, table_repeats: int = 10,
               table_rounds: int = 2, check_top_k: int = 5, report_folds: int = 3,
               max_memory_mb: float | None = None) -> pd.DataFrame:
    """Train, profile, measure, fit, search under three budgets, export; returns the summary table.

    Without ``config``, a run begun earlier in ``out`` resumes with its own config; a new one of
    ``tiny_mbv3`` (the default ``supernet``) trains with ``experiments/configs/mnist_quickstart.yaml``,
    of another preset with its bundled sandwich recipe where there is one (a family's own
    optimiser settings), else with the default config; ``config`` names one explicitly.
    ``precision="int8"`` searches float32 and int8 subnets jointly (int8: static quantization by
    ``runtime``'s own tool, which must have one). ``finetune_epochs`` > 0 also fine-tunes each
    exported subnet (``elasticnas finetune``) into ``<export>_finetuned``. ``table_repeats`` and
    ``table_rounds``: timings per layer and passes over the layers of the latency table
    (``elasticnas profile --repeats/--rounds``, which take 30 and 3); fewer build it faster and
    noisier. On ``tiny_mbv3`` 10 and 2 built it in 17 s instead of 62, its predictions within
    1.7% (SD of the ratio) of the 30 x 3 table's, ordering 100 subnets alike at tau 0.97.
    ``trials``: optuna trials per predictor (``elasticnas fit`` takes 40).
    ``check_top_k``: where the subnet predicted best within a budget is predicted above every
    measured subnet, this many searched subnets are measured and the export is chosen on measured
    validation top-1 (0: always on the prediction; see :func:`export_within_budget`).
    ``report_folds``: outer folds of the predictors' held-out report (``elasticnas fit`` takes 5;
    3 fits the predictors in 28 s instead of 67 on ``tiny_mbv3``'s 100 subnets, held-out tau alike).
    ``max_memory_mb``: the search and the exports keep to subnets whose weights plus KV cache fit
    in it; a language model's run without one is capped by :func:`quickstart_memory_cap`.
    """
    from elasticnas.experiment import load_experiment, quickstart_config, train_experiment
    from elasticnas.searching import search_run

    if precision not in ("fp32", "int8"):
        raise ConfigError(f"precision {precision!r} is not known; choose 'fp32' or 'int8'")
    check_top_k_allowed(check_top_k)  # before hours of training
    if max_memory_mb is not None:
        require_range("--max-memory-mb", max_memory_mb, above=0)
    if table_repeats < 1 or table_rounds < 1:
        raise ConfigError(f"the latency table needs --table-repeats >= 1 and --table-rounds >= 1, "
                          f"got {table_repeats} and {table_rounds}")
    if trials < 1 or report_folds < 2:
        raise ConfigError(f"fitting the predictors needs --trials >= 1 and --report-folds >= 2, "
                          f"got {trials} and {report_folds}")
    if config is None:
        config = quickstart_config(supernet, out)
    if supernet is not None:
        overrides = [f"supernet.name={supernet}", *overrides]
    if precision == "int8":
        require_int8(runtime)  # before hours of training
        overrides = [*overrides, "supernet.overrides.precisions=[8, 32]"]

    out = Path(out)
    started = time.perf_counter()

    def stage(text: str) -> None:
        log(f"[{time.perf_counter() - started:6.0f} s] {text}")

    stage(f"1/6 training the supernet ({config}) into {out}")
    experiment = load_experiment(config, list(overrides))
    if not _training_finished(out, experiment.train.epochs):
        train_experiment(experiment, out, resume=(out / CHECKPOINT).exists(), progress=progress)
    run = load_trained(out)
    stage(f"2/6 latency lookup table ({runtime}, cpu)")
    latency_table_for(out, run.space, runtime=runtime, repeats=table_repeats, rounds=table_rounds,
                      progress=progress)
    stage(f"3/6 measuring {subnets} subnets spread over the MACs range")
    measure_run(out, subnets, seed=seed, runtime=runtime, progress=progress, run=run)
    stage("4/6 fitting accuracy and latency predictors")
    reports_csv = out / PREDICTORS / PREDICTOR_REPORTS
    if not reports_csv.exists() or read_csv(reports_csv, "predictor reports", columns=("samples",),
                                            numeric=("samples",))["samples"].iloc[0] != len(read_evaluations(out)):
        fit_run(out, n_trials=trials, seed=seed, report_folds=report_folds, progress=progress)
    metric = quality_of(run.space)
    stage("  " + describe_accuracy_noise(read_csv(reports_csv, "predictor reports", columns=("target", "kendall_tau")),
                                         metric))
    evaluations = read_evaluations(out)  # the search and the exports add none
    budgets = quickstart_budgets(evaluations)
    cap = max_memory_mb
    if cap is None and run.space.modality == "text":
        cap = quickstart_memory_cap(run.space, evaluations)
    stage(f"5/6 searching the accuracy-latency front under {budgets} ms"
          + ("" if cap is None else f" and {cap} MiB of weights and KV cache"))
    _, search_folder = search_run(out, latency_budgets_ms=budgets, memory_budget_mb=cap, runtime=runtime,
                                  algorithm="nsga2", predicted_evals=predicted_evals, seed=seed, progress=progress)
    stage("6/6 exporting the best subnet for each budget")
    predictor = load_predictor(out / PREDICTORS / ACCURACY_PREDICTOR, run.space)  # the search's accuracy objective
    rows = []
    for budget in budgets:
        folder = out / EXPORTS / f"budget_{budget:g}ms"
        report = _read_budget_report(folder, budget, check_top_k, cap) or export_within_budget(
            out, budget, folder, search_folder=search_folder, runtime=runtime, run=run, strict=False,
            check_top_k=check_top_k, memory_mb=cap)
        if not report["within_budget"]:
            stage(f"  budget {budget} ms NOT MET: no subnet tried measured within it; exported the fastest "
                  f"measured, {report['latency_ms_measured']:.3f} ms (the table is optimistic on this machine today)")
        predicted = float(predictor.predict([run.space.canonical(report["arch"])])[0])
        tested = {name: report[name] for name in ("test_top1", "test_bits_per_byte") if name in report}
        rows.append({"budget_ms": budget, "chosen_on": report["chosen_on"].split()[0], "rank": report["rank"],
                     "within_budget": report["within_budget"], "predicted_ms": report["latency_ms_predicted"],
                     "measured_ms": report["latency_ms_measured"], f"predicted_{metric.column}": predicted,
                     metric.column: report.get(metric.column, float("nan")), **tested,
                     "precision": report["precision"],
                     "int8_accuracy_drop": report.get("int8_accuracy_drop", float("nan")),
                     "macs": report["macs"], "params": report["params"],
                     **({} if cap is None else {"memory_mib": report["memory_bytes"] / 2**20, "memory_cap_mib": cap}),
                     "export": str(folder), **_finetuned(out, folder, report["arch"], finetune_epochs, progress)})
    summary = pd.DataFrame(rows)
    atomic_write_text(out / SUMMARY, summary.to_csv(index=False))
    stage(f"  budgets met: {int(summary['within_budget'].sum())} of {len(summary)} (measured on this machine)")
    warning = None if check_top_k else beyond_measured(summary[f"predicted_{metric.column}"],
                                                         metric.of_row(evaluations), metric)
    if warning:
        stage("  " + warning)
    if run.space.modality == "text":
        from elasticnas.slices import slices_and_sample

        stage("  slice table: the sizes along the front in one weights file")
        slices, sample = slices_and_sample(out, max(budgets), runtime=runtime, progress=progress)
        stage(f"  {len(slices)} slices in {out / EXPORTS / SLICES}; a greedy sample within {max(budgets)} ms: "
              f"{sample!r}")
    stage(f"done: summary in {out / SUMMARY}, Pareto plot {search_folder / PARETO_PLOT}")
    return summary


def quickstart_budgets(evaluations: pd.DataFrame, shares=(0.15, 0.4, 0.7)) -> list[float]:
    """Three latency budgets placed among the run's measured subnets: each the table latency of
    the measured subnet at that share of them (15%, 40%, 70% by default, fastest first), rounded
    up to the microsecond, so that measured subnets lie within every budget on whatever CPU built
    the table; the accuracy check and the budget walk have candidates there, not only the
    single cheapest subnet the space allows."""
    latencies = evaluations["table_latency_ms"].to_numpy(dtype=float)
    return _placed_among_measured(latencies, shares, 3, "budgets are")


def quickstart_memory_cap(space, evaluations: pd.DataFrame, share: float = 0.7) -> float:
    """A memory cap placed among the run's measured subnets, as :func:`quickstart_budgets` places
    latency budgets: the weights plus KV cache (MiB) of the measured subnet at that share of them,
    rounded up to 0.01 MiB; the largest subnets are then out of reach, whatever the latency budget."""
    archs = [space.canonical(text) for text in evaluations["arch"]]
    memory = count_all(space, archs)["memory_bytes"] / 2**20 if archs else np.zeros(0)
    return _placed_among_measured(memory, (share,), 2, "the memory cap is")[0]


def _placed_among_measured(values: np.ndarray, shares, decimals: int, what: str) -> list[float]:
    """The value of the measured subnet at or just above each share of them, rounded up to ``decimals``."""
    if len(values) < 2:
        raise ConfigError(f"{what} placed among measured subnets; the run has {len(values)}: measure more "
                          f"(elasticnas measure RUN --subnets N)")
    scale = 10**decimals
    return [math.ceil(float(np.quantile(values, share, method="higher")) * scale) / scale for share in shares]


def beyond_measured(predicted: pd.Series, measured: pd.Series, metric: QualityMetric = TOP1) -> str | None:
    """A warning where exports were chosen on a predicted quality better than every measured subnet's.

    There the accuracy predictor extrapolates (an additive model scores the combination of each
    gene's best choice above any subnet it was fitted on), and the search, which optimises the
    prediction, goes exactly there; the exports' measured test figure is then the one to trust."""
    best = metric.best(measured)
    beyond = predicted.map(lambda value: metric.better(value, best))
    if not beyond.any():
        return None
    return (f"{int(beyond.sum())} of {len(predicted)} exports were chosen on a predicted {metric.label} "
            f"{metric.beyond} every measured subnet's (up to "
            f"{metric.format(metric.best(predicted))} against the best measured, {metric.format(best)}): "
            f"the accuracy predictor extrapolates there; judge them by their measured {metric.test_column}")


def _finetuned(run_folder: Path, export: Path, arch: dict, epochs: int, progress: bool) -> dict:
    """Test top-1 of ``export`` (of ``arch``) fine-tuned for ``epochs``: done once per subnet and
    epoch count; nothing when ``epochs`` is 0."""
    if not epochs:
        return {}
    from elasticnas.export_finetuning import finetune_export, finetuned_folder

    tuned = finetuned_folder(export)
    report = read_json(tuned / REPORT, "export report", fields=()) if (tuned / REPORT).exists() else {}
    if report.get("finetune", {}).get("epochs") != epochs or report.get("arch") != arch:
        report = finetune_export(export, epochs=epochs, out=tuned, run_folder=run_folder, progress=progress)
    return {"test_top1_finetuned": report["test_top1"], "finetuned_export": str(tuned)}


def _training_finished(folder: Path, epochs: int) -> bool:
    metrics = folder / METRICS
    return metrics.exists() and len(read_metrics(metrics)) >= epochs and (folder / CHECKPOINT).exists()


def _read_budget_report(folder: Path, budget_ms: float, check_top_k: int, memory_mb: float | None) -> dict | None:
    path = folder / REPORT
    if not path.exists():
        return None
    report = read_json(path, "export report", fields=())
    same = (report.get("budget_ms") == budget_ms and report.get("check_top_k", 0) == check_top_k
            and report.get("memory_mb") == memory_mb)
    return report if same and "rank" in report else None
