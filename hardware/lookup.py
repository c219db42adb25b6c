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

from elasticnas.hardware.latency import LatencyResult, measure_latency
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.atomic import atomic_write_json, atomic_write_text
from elasticnas.supernet.errors import ConfigError, InvalidArchitectureError
from elasticnas.supernet.journal import append_row, keep_settings
from elasticnas.supernet.layout import LinearSpec, spec_to_dict
from elasticnas.supernet.space import MobileNetV3Space
from elasticnas.supernet.static import build_layer

TABLE_CSV, TABLE_JSON = "latency_table.csv", "latency_table.json"
PARTIAL_CSV, PARTIAL_JSON = "latency_table.partial.csv", "latency_table.partial.json"
STAT_COLUMNS = ("median_ms", "mean_ms", "trimmed_mean_ms", "p10_ms", "p90_ms", "std_ms", "runs")


def layer_key(spec) -> str:
    return json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"))


def _layer_input_shape(spec) -> tuple[int, ...]:
    if isinstance(spec, LinearSpec):
        return (spec.in_features, 1, 1)
    channels = spec.channels if hasattr(spec, "channels") else spec.in_channels
    return (channels, spec.resolution, spec.resolution)


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

    def __init__(self, space: MobileNetV3Space, entries: pd.DataFrame, metadata: dict,
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
    def layers_to_measure(space: MobileNetV3Space, resolutions: Sequence[int]) -> list:
        """Distinct layer configurations any subnet at these resolutions can contain, in order."""
        seen: dict[str, object] = {}
        for resolution in resolutions:
            fixed, blocks = space.layer_choices(resolution)
            for spec in (*fixed, *blocks.values()):
                seen.setdefault(layer_key(spec), spec)
        return list(seen.values())

    @classmethod
    def build(cls, space: MobileNetV3Space, *, device: str = "cpu", runtime: str = "torch", batch_size: int = 1,
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
                module = build_layer(spec, space.bn_momentum, space.bn_eps).eval()
                result = measure_latency(module, input_shape=_layer_input_shape(spec), batch_size=batch_size,
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
        metadata = json.loads((folder / TABLE_JSON).read_text())
        calibration = metadata.pop("calibration", None)
        space = MobileNetV3Space.from_config(metadata["space"])
        if space.fingerprint != metadata["space_fingerprint"]:
            raise ConfigError(f"{folder / TABLE_JSON} is inconsistent: its space does not match its fingerprint")
        return cls(space, pd.read_csv(folder / TABLE_CSV), metadata, calibration)

    # ----- prediction ------------------------------------------------------------------
    def _fill_arrays(self) -> None:
        space = self.space
        by_key = dict(zip(self.entries["layer"], self.entries[self.metadata.get("statistic", "median_ms")],
                          strict=True))
        n_res = len(self.resolutions)
        self._fixed = np.zeros(n_res)
        self._blocks = np.zeros((n_res, space.num_slots, len(space.kernel_choices), len(space.expand_choices)))
        for r, resolution in enumerate(self.resolutions):
            fixed, blocks = space.layer_choices(resolution)
            try:
                self._fixed[r] = sum(by_key[layer_key(s)] for s in fixed)
                for (slot, kernel, expand), spec in blocks.items():
                    k, e = space.kernel_choices.index(kernel), space.expand_choices.index(expand)
                    self._blocks[r, slot, k, e] = by_key[layer_key(spec)]
            except KeyError as missing:
                raise ConfigError(f"latency table lacks a layer needed at {resolution} px: {missing}") from None
        self._res_index = {res: i for i, res in enumerate(self.resolutions)}
        self._num_fixed = len(fixed)
        self._overhead = float(self.metadata.get("call_overhead_ms", 0.0))

    def check(self, space: MobileNetV3Space | None = None, *, batch_size: int | None = None,
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
        res_idx, k_idx, e_idx, active = self._genes(archs)
        slots = np.arange(self.space.num_slots)
        block = self._blocks[res_idx[:, None], slots[None, :], k_idx, e_idx]
        layers = self._num_fixed + active.sum(axis=1)
        latency = self._fixed[res_idx] + (block * active).sum(axis=1) - (layers - 1) * self._overhead
        if calibrated and self.calibration:
            latency = self.calibration["slope"] * latency + self.calibration["intercept"]
        return float(latency[0]) if single else latency

    def _genes(self, archs: list[Arch]):
        space = self.space
        try:
            res_idx = np.fromiter((self._res_index[a.resolution] for a in archs), dtype=np.int64, count=len(archs))
        except KeyError as bad:
            raise InvalidArchitectureError(
                f"latency table was built for resolutions {list(self.resolutions)}, not {bad.args[0]} px; "
                f"build it with that resolution"
            ) from None
        try:
            kernels = np.array([a.kernel_sizes for a in archs], dtype=np.int64).reshape(len(archs), -1)
            ratios = np.array([a.expand_ratios for a in archs], dtype=float).reshape(len(archs), -1)
        except ValueError:
            raise InvalidArchitectureError("architectures have differing numbers of block slots") from None
        if kernels.shape[1] != space.num_slots:
            raise InvalidArchitectureError(f"architectures have {kernels.shape[1]} block slots; "
                                           f"the table's space has {space.num_slots}")
        active = kernels != 0
        k_idx, k_ok = _choice_index(kernels, space.kernel_choices)
        e_idx, e_ok = _choice_index(ratios, space.expand_choices)
        bad = active & ~(k_ok & e_ok)
        if bad.any():
            row, slot = map(int, np.argwhere(bad)[0])
            raise InvalidArchitectureError(
                f"architecture {row}, slot {slot}: kernel {kernels[row, slot]} / expand {ratios[row, slot]} is not "
                f"in the space (kernels {list(space.kernel_choices)}, expands {list(space.expand_choices)})")
        return res_idx, np.where(active, k_idx, 0), np.where(active, e_idx, 0), active

    def cheapest(self) -> tuple[float, Arch]:
        """``(latency_ms, arch)`` of the fastest subnet the table knows, found exactly.

        A subnet's table latency is a constant per resolution plus one term per active block,
        each depending on that block's own genes only, so per stage the best depth and per
        slot the best kernel/expand pair can be chosen independently.
        """
        space, best = self.space, None
        for r, resolution in enumerate(self.resolutions):
            per_slot = self._blocks[r].reshape(space.num_slots, -1) - self._overhead
            choice, cost = per_slot.argmin(axis=1), per_slot.min(axis=1)
            depths = []
            for stage in range(space.num_stages):
                running = np.cumsum(cost[stage * space.max_depth : (stage + 1) * space.max_depth])
                depths.append(min(space.depth_choices, key=lambda d, running=running: running[d - 1]))
            kernels = [space.kernel_choices[c // len(space.expand_choices)] for c in choice]
            expands = [space.expand_choices[c % len(space.expand_choices)] for c in choice]
            arch = Arch(resolution, tuple(depths), tuple(kernels), tuple(expands))
            value = float(self.predict([arch])[0])
            if best is None or value < best[0]:
                best = (value, arch)
        return best

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


def _choice_index(values: np.ndarray, choices: tuple) -> tuple[np.ndarray, np.ndarray]:
    sorted_choices = np.asarray(choices, dtype=float)
    index = np.clip(np.searchsorted(sorted_choices, values), 0, len(choices) - 1)
    return index, np.isclose(sorted_choices[index], values)


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
    lines = partial_csv.read_text().splitlines()
    header = next(csv.reader(lines[:1]), [])
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
