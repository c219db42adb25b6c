"""Measuring a latency table: every layer configuration, in shuffled rounds, resumable, each
layer bracketed by readings of the reference workload, with calibration subnets measured
among the layers rather than in a block of their own (see :mod:`elasticnas.hardware.lookup`)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from elasticnas.core.atomic import atomic_write_text
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import reading
from elasticnas.core.journal import append_row, keep_settings, open_append
from elasticnas.core.run_layout import PARTIAL_TABLE_CSV as PARTIAL_CSV
from elasticnas.core.run_layout import PARTIAL_TABLE_JSON as PARTIAL_JSON
from elasticnas.hardware.latency import LatencyResult, measure_latency, prepare_for_timing
from elasticnas.hardware.reference import ReferenceClock
from elasticnas.supernet.specs import spec_precision, spec_to_dict

STAT_COLUMNS = ("median_ms", "mean_ms", "trimmed_mean_ms", "p10_ms", "p90_ms", "std_ms", "runs")
REFERENCE_COLUMNS = ("reference_ms", "ratio")
SUBNET_PREFIX = "subnet:"  # partial-build rows of calibration subnets carry this before the arch JSON


def layer_key(spec) -> str:
    return json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    versions = {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        pass
    return versions


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda" and torch.cuda.is_available():  # pragma: no cover - needs a GPU
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


def measure_table(space, layers: list, settings: dict, *, calibration_archs: Sequence = (),
                  out: Path | None = None, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``(layer entries, calibration measurements, metadata)`` of a table over ``layers``.

    Each round visits the layers in a fresh shuffled order with the calibration subnets
    spread evenly among them, so layers and the subnets that calibrate them see the same
    moods of the machine. Each item is converted for its runtime once and timed in every
    round. Rows go to ``out/latency_table.partial.csv`` as they are taken.
    """
    rounds, seed = settings["rounds"], settings["seed"]
    keys = [layer_key(spec) for spec in layers]
    items = [(key, spec) for key, spec in zip(keys, layers, strict=True)]
    items += [(SUBNET_PREFIX + arch.to_json(), arch) for arch in calibration_archs]
    done = _resume_partial(out, settings) if out is not None else {}
    rng = np.random.default_rng(seed)
    todo = [(r, items[i]) for r in range(rounds) for i in _interleaved_order(rng, len(layers), len(items))
            if (items[i][0], r) not in done]
    clock = _clock(settings)
    measure = {key: settings[key] for key in ("batch_size", "device", "runtime", "threads", "warmup", "repeats")}
    prepared = {}  # key -> each item converted once and timed in every round: converting can take seconds
    start = time.perf_counter()
    bar = tqdm(total=rounds * len(items), initial=rounds * len(items) - len(todo), disable=not progress,
               desc=f"latency table ({settings['runtime']}, {settings['device']})", unit="layer")
    writer_file = open_append(out / PARTIAL_CSV) if out is not None else None
    try:
        for round_index, (key, item) in todo:
            if key not in prepared:
                prepared[key] = _prepare_item(space, key, item, measure,
                                              quantized_io=settings.get("int8_layer_io") == "8-bit")
            shape, precision, ready = prepared[key]
            result = measure_latency(None, input_shape=shape, reference=clock, precision=precision, prepared=ready,
                                     **measure)
            row = _row(key, item, result, round_index)
            done[(key, round_index)] = row
            if writer_file is not None:
                append_row(writer_file, row)
            bar.update()
    finally:
        bar.close()
        if writer_file is not None:
            writer_file.close()
    overhead = measure_latency(torch.nn.Identity(), input_shape=(1, 1, 1), reference=clock, **measure)
    rows = pd.DataFrame([done[(key, r)] for r in range(rounds) for key, _ in items])
    is_subnet = rows["layer"].str.startswith(SUBNET_PREFIX)
    entries = _merge_rounds(rows[~is_subnet], keys)
    calibration = _merge_rounds(rows[is_subnet], [key for key, _ in items[len(layers):]])
    metadata = {
        "call_overhead_ms": overhead.median_ms, "call_overhead_units": overhead.ratio,
        "reference_ms": float(rows["reference_ms"].median()),  # every round, resumed ones included
        "reference_repeats_for_drift": len(clock.events),
        **clock.describe(), "device_name": device_name(settings["device"]), "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(), "versions": library_versions(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds_this_session": round(time.perf_counter() - start, 2),
    }
    return entries, calibration, metadata


def _prepare_item(space, key: str, item, measure: dict, quantized_io: bool) -> tuple:
    """``(input shape, precision, prepared)`` of a layer spec or a calibration subnet; ``quantized_io``:
    int8 layers are fed and read as 8-bit tensors, as inside an int8 subnet (subnets are timed whole)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    if key.startswith(SUBNET_PREFIX):
        module, precision = space.timing_model(item).eval(), item.precision
        example = space.example_input(item, measure["batch_size"], generator)
    else:
        module, precision = item.timing_module(space.bn_momentum, space.bn_eps).eval(), spec_precision(item)
        example = item.example_input(measure["batch_size"], generator)
    settings = {name: measure[name] for name in ("batch_size", "device", "runtime", "threads")}
    layer = not key.startswith(SUBNET_PREFIX)
    shape = tuple(example.shape[1:])
    return shape, precision, prepare_for_timing(module, input_shape=shape, precision=precision, example=example,
                                                quantized_io=quantized_io and layer and precision != 32, **settings)


def _clock(settings: dict) -> ReferenceClock:
    """A reference read about as thoroughly as the layers it brackets: 5 runs for the default
    30 repeats, down to 2 for a quick build (which the reading would otherwise dominate)."""
    return ReferenceClock(runtime=settings["runtime"], device=settings["device"], threads=settings["threads"],
                          batch_size=settings["batch_size"], repeats=min(5, max(2, settings["repeats"] // 6)))


def _interleaved_order(rng: np.random.Generator, n_layers: int, n_items: int) -> list[int]:
    """A shuffled order of the layers with the items after them (calibration subnets) spread evenly."""
    order = list(rng.permutation(n_layers))
    extra = list(range(n_layers, n_items))
    for slot, item in enumerate(extra):
        order.insert(round((slot + 0.5) * n_layers / len(extra)) + slot, item)
    return order


def _row(key: str, item, result: LatencyResult, round_index: int) -> dict:
    if key.startswith(SUBNET_PREFIX):
        kind, resolution = "subnet", item.resolution
    else:
        kind, resolution = spec_to_dict(item)["type"], getattr(item, "resolution", 1)
    row = {"layer": key, "round": round_index, "type": kind, "resolution": resolution}
    row.update({name: getattr(result, name) for name in STAT_COLUMNS})
    row.update(reference_ms=result.reference_ms, ratio=result.ratio)
    return row


def _merge_rounds(rows: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """One row per layer: ``latency_ms`` the least per-round median (the undisturbed speed);
    ``latency_units`` the median per-round ratio to the reference (speed cancels in a ratio, so
    the median is unbiased); other statistics their median over rounds."""
    columns = ["layer", "type", "resolution", "latency_ms", "latency_units", *STAT_COLUMNS, "reference_ms", "rounds"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    stats = [c for c in STAT_COLUMNS if c != "runs"]
    merged = rows.groupby("layer", sort=False).agg(
        {"type": "first", "resolution": "first", **{c: "median" for c in (*stats, "reference_ms")}, "runs": "sum",
         "round": "count"}
    ).rename(columns={"round": "rounds"})
    merged["latency_ms"] = rows.groupby("layer", sort=False)["median_ms"].min()
    merged["latency_units"] = rows.groupby("layer", sort=False)["ratio"].median()
    return merged.loc[order].reset_index()[columns]


def _resume_partial(out: Path, settings: dict) -> dict:
    partial_json, partial_csv = out / PARTIAL_JSON, out / PARTIAL_CSV
    if not keep_settings(partial_json, settings, "a partial build", f"build with the same settings to resume, "
                         f"or delete {PARTIAL_JSON} and {PARTIAL_CSV}"):
        partial_csv.unlink(missing_ok=True)
    if not partial_csv.exists() or partial_csv.stat().st_size == 0:
        return {}
    # A kill mid-write can tear the last row: parse line by line, keep the complete rows and
    # rewrite the file, so that new rows are appended after a clean line end.
    with reading(partial_csv, "partial latency table (delete it to start the build afresh)"):
        lines = partial_csv.read_text(encoding="utf-8").splitlines()
        header = next(csv.reader(lines[:1]), [])
        if "layer" not in header:
            raise ValueError("it has no 'layer' column")
    rows = []
    for line in lines[1:]:
        fields = next(csv.reader([line]), [])
        if len(fields) != len(header):
            continue
        row = dict(zip(header, fields, strict=True))
        try:
            row.update({k: float(row[k]) for k in (*STAT_COLUMNS, *REFERENCE_COLUMNS)}, round=int(row["round"]))
            row["resolution"] = int(row["resolution"])
        except (KeyError, ValueError):
            continue
        rows.append(row)
    frame = pd.DataFrame(rows)
    atomic_write_text(partial_csv, frame.to_csv(index=False) if rows else "")
    return {(row["layer"], row["round"]): row for row in rows}


def check_build_settings(space, resolutions, rounds: int) -> tuple[int, ...]:
    resolutions = tuple(sorted(space.resolutions if resolutions is None else resolutions))
    bad = [r for r in resolutions if r not in space.resolutions]
    if bad or not resolutions:
        raise ConfigError(f"resolutions {bad or '[]'} are not in the space; choose from {list(space.resolutions)}")
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, but got {rounds}")
    return resolutions
