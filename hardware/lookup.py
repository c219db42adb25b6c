"""Per-layer latency lookup tables, built on the user's own device.

A table measures, once each, every distinct layer configuration any subnet of a space can
contain (at the resolutions asked for), then predicts a subnet's latency as the sum of its
layers. Each standalone measurement also pays the runtime's fixed cost of one invocation
(for ONNX Runtime, microseconds per ``session.run``), which a whole subnet pays only once;
the table measures that cost on an identity model and counts it once per subnet.
Prediction is a numpy gather over a dense array, so whole populations are scored at once.
A small linear calibration fitted on a few end-to-end measurements absorbs what per-layer
sums miss (framework overhead between layers, fusion across them).
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import os
import platform
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from elasticnas.core.atomic import atomic_write_json, atomic_write_text
from elasticnas.core.errors import ConfigError, InvalidArchitectureError
from elasticnas.core.files import read_csv, read_json, reading
from elasticnas.core.journal import append_row, keep_settings
from elasticnas.hardware.latency import LatencyResult, measure_latency
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.registry import space_from_config
from elasticnas.supernet.space import SearchSpace
from elasticnas.supernet.specs import spec_to_dict

TABLE_CSV, TABLE_JSON = "latency_table.csv", "latency_table.json"
PARTIAL_CSV, PARTIAL_JSON = "latency_table.partial.csv", "latency_table.partial.json"
STAT_COLUMNS = ("median_ms", "mean_ms", "trimmed_mean_ms", "p10_ms", "p90_ms", "std_ms", "runs")
TABLE_COLUMNS = ("layer", "latency_ms", *STAT_COLUMNS)
NUMERIC_TABLE_COLUMNS = ("latency_ms", *STAT_COLUMNS)


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


def _library_versions() -> dict[str, str]:
    versions = {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        pass
    return versions


def _device_name(device: str) -> str:
    if torch.device(device).type == "cuda" and torch.cuda.is_available():  # pragma: no cover - needs a GPU
        return torch.cuda.get_device_name(torch.device(device))
    return cpu_model()


class LatencyTable:
    """Latency of every layer configuration of a space on one device, runtime and batch size.

    >>> from elasticnas.supernet import create_space
    >>> space = create_space("tiny_mbv3", num_classes=10, resolutions=(28,))
    >>> table = LatencyTable.build(space, repeats=3, warmup=1, progress=False)  # doctest: +SKIP
    >>> table.predict(space.sample(0, n=1000))  # doctest: +SKIP
    """

    def __init__(self, space: SearchSpace, entries: pd.DataFrame, metadata: dict,
                 calibration: dict | None = None):
        self.space = space
        self.entries = entries.reset_index(drop=True)
        self.metadata = dict(metadata)
        self.calibration = calibration
        self.resolutions = tuple(int(r) for r in self.metadata["resolutions"])
        self.batch_size = int(self.metadata["batch_size"])
        self._fill_arrays()

    # ----- building ---------------------------------------------------------------------
    @staticmethod
    def layers_to_measure(space: SearchSpace, resolutions: Sequence[int]) -> list:
        """Distinct layer configurations any subnet at these resolutions can contain, in order."""
        return space.layers_at(resolutions)

    @classmethod
    def build(cls, space: SearchSpace, *, device: str = "cpu", runtime: str = "torch", batch_size: int = 1,
              resolutions: Sequence[int] | None = None, threads: int | None = None, warmup: int = 5,
              repeats: int = 30, rounds: int = 3, seed: int = 0, out: str | os.PathLike | None = None,
              progress: bool = True) -> LatencyTable:
        """Measure every layer configuration; resumable when ``out`` is given.

        Layers are measured in ``rounds`` passes, each in a fresh shuffled order, and a
        layer's latency (``latency_ms``) is the smallest of its per-round medians: a shared
        machine switches between speed modes for seconds at a time, and the minimum tracks
        its undisturbed speed, the same for every layer and for the end-to-end measurements
        of :func:`~elasticnas.hardware.measure_archs`.
        An interrupted build leaves ``latency_table.partial.csv`` in ``out``; building again
        with the same settings measures only what is missing.
        """
        resolutions = tuple(sorted(space.resolutions if resolutions is None else resolutions))
        bad = [r for r in resolutions if r not in space.resolutions]
        if bad or not resolutions:
            raise ConfigError(f"resolutions {bad or '[]'} are not in the space; choose from {list(space.resolutions)}")
        threads = threads or torch.get_num_threads()
        settings = {
            "space_fingerprint": space.fingerprint, "space_name": space.name, "device": device, "runtime": runtime,
            "batch_size": batch_size, "resolutions": list(resolutions), "threads": threads,
            "warmup": warmup, "repeats": repeats, "rounds": rounds, "seed": seed,
        }
        if rounds < 1:
            raise ConfigError(f"rounds must be >= 1, but got {rounds}")
        layers = cls.layers_to_measure(space, resolutions)
        done: dict[str, dict] = {}
        partial_csv = None
        if out is not None:
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
            partial_csv = out / PARTIAL_CSV
            done = _resume_partial(out, settings)
        start = time.perf_counter()
        rng = np.random.default_rng(seed)
        orders = [rng.permutation(len(layers)) for _ in range(rounds)]
        todo = [(r, i) for r in range(rounds) for i in orders[r] if (layer_key(layers[i]), r) not in done]
        bar = tqdm(total=rounds * len(layers), initial=rounds * len(layers) - len(todo), disable=not progress,
                   desc=f"latency table ({runtime}, {device})", unit="layer")
        writer_file = open(partial_csv, "a", newline="") if partial_csv else None  # noqa: SIM115
        try:
            for round_index, i in todo:
                spec = layers[i]
                torch.manual_seed(0)
                module = spec.build(space.bn_momentum, space.bn_eps).eval()
                result = measure_latency(module, input_shape=spec.input_shape, batch_size=batch_size,
                                         device=device, runtime=runtime, threads=threads, warmup=warmup,
                                         repeats=repeats)
                row = _row(layer_key(spec), spec, result, round_index)
                done[(row["layer"], round_index)] = row
                if writer_file is not None:
                    append_row(writer_file, row)
                bar.update()
        finally:
            bar.close()
            if writer_file is not None:
                writer_file.close()
        overhead = measure_latency(torch.nn.Identity(), input_shape=(1, 1, 1), batch_size=batch_size, device=device,
                                   runtime=runtime, threads=threads, warmup=warmup, repeats=repeats)
        entries = _merge_rounds(pd.DataFrame([done[(layer_key(s), r)] for r in range(rounds) for s in layers]), layers)
        metadata = {
            "call_overhead_ms": overhead.median_ms,
            **settings,
            "space": space.to_config(),
            "device_name": _device_name(device),
            "cpu_model": cpu_model(),
            "cpu_cores": os.cpu_count(),
            "versions": _library_versions(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds_this_session": round(time.perf_counter() - start, 2),
            "statistic": "latency_ms",
            "format": 1,
        }
        table = cls(space, entries, metadata)
        if out is not None:
            table.save(out)
            for name in (PARTIAL_CSV, PARTIAL_JSON):
                (out / name).unlink(missing_ok=True)
        return table

    # ----- persistence -----------------------------------------------------------------
    def save(self, out: str | os.PathLike) -> Path:
        out = Path(out)
        atomic_write_text(out / TABLE_CSV, self.entries.to_csv(index=False))
        atomic_write_json(out / TABLE_JSON, {**self.metadata, "calibration": self.calibration})
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        path = Path(path)
        folder = path.parent if path.name in (TABLE_CSV, TABLE_JSON) else path
        if not (folder / TABLE_JSON).exists():
            raise ConfigError(f"no latency table at {folder} (expected {TABLE_CSV} and {TABLE_JSON}); "
                              f"build one with `elasticnas profile`")
        what = "latency table (rebuild it with `elasticnas profile`, or delete the folder)"
        with reading(folder / TABLE_JSON, what):
            metadata = read_json(folder / TABLE_JSON, what, fields=("space", "space_fingerprint"))
            calibration = metadata.pop("calibration", None)
            space = space_from_config(metadata["space"])
            if space.fingerprint != metadata["space_fingerprint"]:
                raise ConfigError(f"{folder / TABLE_JSON} is inconsistent: its space does not match its fingerprint")
        with reading(folder / TABLE_CSV, what):
            entries = read_csv(folder / TABLE_CSV, what, columns=TABLE_COLUMNS, numeric=NUMERIC_TABLE_COLUMNS)
            return cls(space, entries, metadata, calibration)

    # ----- prediction ------------------------------------------------------------------
    def _fill_arrays(self) -> None:
        """Latency of each of the space's distinct layers (NaN: not measured), then 0 for id -1."""
        by_key = dict(zip(self.entries["layer"], self.entries[self.metadata.get("statistic", "median_ms")],
                          strict=True))
        needed = {layer_key(spec) for spec in self.space.layers_at(self.resolutions)}
        missing = needed - set(by_key)
        if missing:
            raise ConfigError(f"latency table lacks {len(missing)} layers its resolutions need, e.g. "
                              f"{sorted(missing)[0]}; build it again")
        self._latency = np.array([by_key.get(layer_key(s), np.nan) for s in self.space.distinct_layers] + [0.0])
        self._overhead = float(self.metadata.get("call_overhead_ms", 0.0))

    def check(self, space: SearchSpace | None = None, *, batch_size: int | None = None,
              device: str | None = None, runtime: str | None = None) -> None:
        """Raise unless the table was built for this space, batch size, device and runtime."""
        meta = self.metadata
        if space is not None and space.fingerprint != meta["space_fingerprint"]:
            raise ConfigError(f"latency table was built for space {meta['space_name']!r} "
                              f"(fingerprint {meta['space_fingerprint']}), not for {space.name!r} "
                              f"(fingerprint {space.fingerprint}); build a table for this space")
        for name, wanted in (("batch_size", batch_size), ("device", device), ("runtime", runtime)):
            if wanted is not None and wanted != meta[name]:
                raise ConfigError(f"latency table was built for {name}={meta[name]!r}, not {name}={wanted!r}")

    def predict(self, archs: Arch | Iterable[Arch], *, batch_size: int | None = None,
                calibrated: bool = True) -> np.ndarray | float:
        """Predicted latency in ms of each architecture (a float for a single one)."""
        if batch_size is not None:
            self.check(batch_size=batch_size)
        single = isinstance(archs, Arch)
        archs = [archs] if single else list(archs)
        for arch in archs:
            if arch.resolution not in self.resolutions:
                raise InvalidArchitectureError(
                    f"latency table was built for resolutions {list(self.resolutions)}, not {arch.resolution} px; "
                    f"build it with that resolution")
        latency = self.predict_genes(self.space.encode(archs), calibrated=calibrated)
        return float(latency[0]) if single else latency

    def predict_genes(self, genes: np.ndarray, *, calibrated: bool = True) -> np.ndarray:
        """Predicted latency of each row of an integer gene matrix (vectorised: one gather per layer)."""
        ids = self.space.layer_ids(genes)
        layers = (ids >= 0).sum(axis=1)
        latency = self._latency[ids].sum(axis=1) - (layers - 1) * self._overhead
        if calibrated and self.calibration:
            latency = self.calibration["slope"] * latency + self.calibration["intercept"]
        return latency

    def cheapest(self) -> tuple[float, Arch, bool]:
        """``(latency_ms, arch, exact)``: the fastest subnet found, and whether it is provably the fastest.

        Layers' choices depend on each other (a ResNet stage's width is the next one's input),
        so the search is a block-coordinate descent from the smallest subnet at each resolution,
        each move trying every combination of the genes one layer position depends on. It is exact when it meets
        the lower bound of summing, per layer position, its cheapest possible layer.
        """
        space, best = self.space, None
        res_index = [space.genes[0].choices.index(r) for r in self.resolutions]
        upper = space.encoding_upper_bounds
        groups = {tuple(c for c in slot.genes if c != 0) for slot in space.layer_slots} - {()}
        moves = [np.array(list(itertools.product(*(range(upper[c] + 1) for c in group)))) for group in groups]
        for r in res_index:
            current = space.encode([space.min()])[0]
            current[0] = r
            value = float(self.predict_genes(current[None, :], calibrated=False)[0])
            improved = True
            while improved:  # each round moves all genes of one layer position at once, jointly
                improved = False
                for group, combos in zip(groups, moves, strict=True):
                    trial = np.repeat(current[None, :], len(combos), axis=0)
                    trial[:, list(group)] = combos
                    values = self.predict_genes(trial, calibrated=False)
                    if values.min() < value - 1e-12:
                        current, value, improved = trial[int(values.argmin())], float(values.min()), True
            if best is None or value < best[0]:
                best = (value, current)
        arch = space.decode(best[1])
        value = float(self.predict([arch])[0])
        return value, arch, bool(best[0] <= self._lower_bound() + 1e-9)

    def _lower_bound(self) -> float:
        """No subnet is faster than the least, over resolutions, of each position's cheapest layer."""
        bounds = []
        for resolution in self.resolutions:
            total = sum(float(np.min(np.where(ids >= 0, self._latency[ids] - self._overhead, 0.0)))
                        for ids in self.space.slot_ids_at([resolution]))
            bounds.append(total + self._overhead)
        return min(bounds)

    # ----- calibration -----------------------------------------------------------------
    def calibrate(self, archs: Sequence[Arch], measured_ms: Sequence[float]) -> LatencyTable:
        """A copy whose predictions pass through ``slope * sum + intercept`` fitted by least squares."""
        measured = np.asarray(measured_ms, dtype=float)
        if len(archs) != len(measured) or len(measured) < 2:
            raise ConfigError(f"calibration needs at least 2 architectures with one measurement each, "
                              f"got {len(archs)} architectures and {len(measured)} measurements")
        raw = self.predict(archs, calibrated=False)
        slope, intercept = np.polyfit(raw, measured, 1)
        calibration = {"slope": float(slope), "intercept": float(intercept), "n": int(len(measured))}
        return LatencyTable(self.space, self.entries, self.metadata, calibration)


def _row(key: str, spec, result: LatencyResult, round_index: int) -> dict:
    fields = spec_to_dict(spec)
    row = {"layer": key, "round": round_index, "type": fields["type"], "resolution": getattr(spec, "resolution", 1)}
    row.update({name: getattr(result, name) for name in STAT_COLUMNS})
    return row


def _merge_rounds(rows: pd.DataFrame, layers: list) -> pd.DataFrame:
    """One row per layer: ``latency_ms`` the least per-round median; other statistics their median over rounds."""
    stats = [c for c in STAT_COLUMNS if c != "runs"]
    merged = rows.groupby("layer", sort=False).agg(
        {"type": "first", "resolution": "first", **{c: "median" for c in stats}, "runs": "sum", "round": "count"}
    ).rename(columns={"round": "rounds"})
    merged.insert(2, "latency_ms", rows.groupby("layer", sort=False)["median_ms"].min())
    order = [layer_key(s) for s in layers]
    return merged.loc[order].reset_index()


def _resume_partial(out: Path, settings: dict) -> dict[str, dict]:
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
            row.update({k: float(row[k]) for k in STAT_COLUMNS}, round=int(row["round"]))
            row["resolution"] = int(row["resolution"])
        except (KeyError, ValueError):
            continue
        rows.append(row)
    frame = pd.DataFrame(rows)
    atomic_write_text(partial_csv, frame.to_csv(index=False) if rows else "")
    return {(row["layer"], row["round"]): row for row in rows}
