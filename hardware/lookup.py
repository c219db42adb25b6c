"""Per-layer latency lookup tables, built on the user's own device.

A table measures, once each, every distinct layer configuration any subnet of a space can
contain (at the resolutions asked for), then predicts a subnet's latency as the sum of its
layers. Each standalone measurement also pays the runtime's fixed cost of one invocation
(for ONNX Runtime, microseconds per ``session.run``), which a whole subnet pays only once;
the table measures that cost on an identity model and counts it once per subnet.
Prediction is a numpy gather over a dense array, so whole populations are scored at once.
A small linear calibration fitted on a few end-to-end subnets, measured among the layers
while the table is built, absorbs what per-layer sums miss (framework overhead between
layers, fusion across them).

Every layer and subnet is timed between two readings of a fixed reference workload
(:mod:`elasticnas.hardware.reference`) and kept both raw (``latency_ms``, the least
per-round median) and in reference units (``latency_units``). A *normalised* table (the
default) predicts in reference units and converts to milliseconds with a reference time:
the one seen while it was built, or the machine's current one (:meth:`LatencyTable.at_current_speed`),
so that a table built while the machine was in one speed mode still predicts it in another.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from elasticnas.core.atomic import atomic_write_json, atomic_write_text
from elasticnas.core.checksums import sha256_bytes, verify_bytes
from elasticnas.core.errors import ConfigError, InvalidArchitectureError
from elasticnas.core.files import read_csv, read_json, reading
from elasticnas.core.run_layout import TABLE_CSV, TABLE_JSON
from elasticnas.hardware.quantize import require_int8
from elasticnas.hardware.reference import REFERENCE_VERSION, ReferenceClock, relative_change
from elasticnas.hardware.runtimes import check_runtime
from elasticnas.hardware.table_build import (
    PARTIAL_CSV,
    PARTIAL_JSON,
    STAT_COLUMNS,
    check_build_settings,
    layer_key,
    measure_table,
)
from elasticnas.hardware.table_calibration import calibration_subnets, fit_per_precision, positive_line
from elasticnas.hardware.table_validation import check_calibration, check_entries, check_metadata, check_positive
from elasticnas.hardware.timing import resolved_threads
from elasticnas.supernet.arch import Arch
from elasticnas.supernet.catalogue import space_from_config
from elasticnas.supernet.space import SearchSpace

TABLE_COLUMNS = ("layer", "latency_ms", *STAT_COLUMNS)
NUMERIC_TABLE_COLUMNS = ("latency_ms", *STAT_COLUMNS)
__all__ = ["PARTIAL_CSV", "PARTIAL_JSON", "TABLE_CSV", "TABLE_JSON", "LatencyTable", "layer_key"]
_WARNED: set[tuple] = set()  # tables whose speed change was already reported in this process


INT8_LAYER_IO = ("8-bit", "float32")  # how an int8 table times its int8 layers (LatencyTable.build)


class LatencyTable:
    """Latency of every layer configuration of a space on one device, runtime and batch size.

    >>> from elasticnas.supernet import create_space
    >>> space = create_space("tiny_mbv3", num_classes=10, resolutions=(28,))
    >>> table = LatencyTable.build(space, repeats=3, warmup=1, progress=False)  # doctest: +SKIP
    >>> table.predict(space.sample(0, n=1000))  # doctest: +SKIP
    """

    def __init__(self, space: SearchSpace, entries: pd.DataFrame, metadata: dict,
                 calibration: dict | None = None, *, speed_ms: float | None = None):
        self.space = space
        self.entries = entries.reset_index(drop=True)
        self.metadata = dict(metadata)
        self.calibration = calibration
        self.resolutions = tuple(int(r) for r in self.metadata["resolutions"])
        self.batch_size = int(self.metadata["batch_size"])
        check_metadata(self.metadata)
        self.normalised = self.metadata.get("normalised") is True and "latency_units" in self.entries
        # the reference time predictions are converted with (ms per reference inference)
        self.speed_ms = float(speed_ms or self.metadata.get("reference_ms") or 1.0)
        self.current_reference_ms: float | None = None  # set by at_current_speed
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
              progress: bool = True, calibrate: int | Sequence[Arch] = 0, normalise: bool = True,
              int8_layer_io: str = "float32") -> LatencyTable:
        """Measure every layer configuration (and ``calibrate`` subnets among them); resumable with ``out``.

        Layers are measured in ``rounds`` passes, each in a fresh shuffled order; a layer's raw
        latency (``latency_ms``) is the smallest of its per-round medians (the machine's
        undisturbed speed) and its ``latency_units`` the median of its per-round ratios to the
        reference. ``calibrate``: a number of random subnets at the table's resolutions, or the
        subnets themselves, measured end to end in every round at places spread among the
        layers, and fitted as a linear correction. ``normalise`` picks the prediction mode
        (both are always measured; :meth:`normalised_as` switches).
        An interrupted build leaves ``latency_table.partial.csv`` in ``out``; building again
        with the same settings measures only what is missing. ``int8_layer_io``: int8 layers are
        timed with ``"8-bit"`` input and output, as they run inside an int8 subnet (where the
        runtime can: ONNX Runtime), or with ``"float32"`` borders, each quantizing its input and
        dequantizing its output; the metadata records which.
        """
        check_runtime(runtime, device)  # before a folder is made
        resolutions = check_build_settings(space, resolutions, rounds)
        if int8_layer_io not in INT8_LAYER_IO:
            raise ConfigError(f"int8_layer_io={int8_layer_io!r}; choose one of {list(INT8_LAYER_IO)}")
        quantizer = require_int8(runtime) if space.searches_precision else None
        if quantizer is not None and torch.device(device).type != "cpu":
            raise ConfigError(f"int8 subnets are quantized and timed on the CPU here, not on {device!r}; "
                              f"build the table with device='cpu'")
        archs = calibrate if not isinstance(calibrate, int) else calibration_subnets(space, resolutions, calibrate,
                                                                                     seed=seed + 1)
        settings = {
            "space_fingerprint": space.fingerprint, "space_name": space.name, "device": device, "runtime": runtime,
            "batch_size": batch_size, "resolutions": list(resolutions), "threads": resolved_threads(threads),
            "warmup": warmup, "repeats": repeats, "rounds": rounds, "seed": seed,
            "calibration_archs": [arch.to_json() for arch in archs],
        }
        if quantizer is not None:  # int8 layers timed as inside an int8 subnet, or with float32 borders
            settings["int8_layer_io"] = int8_layer_io if quantizer.quantized_io else "float32"
        if out is not None:
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
        entries, measured, extra = measure_table(space, cls.layers_to_measure(space, resolutions), settings,
                                                 calibration_archs=archs, out=out, progress=progress)
        metadata = {**settings, "space": space.to_config(), **extra, "statistic": "latency_ms",
                    "normalised": normalise, "format": 2,
                    "calibration_measured": measured[["latency_ms", "latency_units"]].to_dict("records")}
        table = cls(space, entries, metadata)
        if len(archs) >= 2:
            table = table._fit_calibration()
        if out is not None:
            table.save(out)
            for name in (PARTIAL_CSV, PARTIAL_JSON):
                (out / name).unlink(missing_ok=True)
        return table

    # ----- persistence -----------------------------------------------------------------
    def save(self, out: str | os.PathLike) -> Path:
        """The CSV, then the JSON recording its sha256: the JSON marks a whole table, so it goes first
        when a table is replaced (a kill in between leaves no table, not a mismatched one)."""
        out = Path(out)
        (out / TABLE_JSON).unlink(missing_ok=True)
        text = self.entries.to_csv(index=False)
        atomic_write_text(out / TABLE_CSV, text)
        atomic_write_json(out / TABLE_JSON, {**self.metadata, "calibration": self.calibration,
                                             "csv_sha256": sha256_bytes(text.encode())})
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
            recorded = metadata.pop("csv_sha256", None)
            check_metadata(metadata)
            check_calibration(calibration)
            space = space_from_config(metadata["space"])
            if space.fingerprint != metadata["space_fingerprint"]:
                raise ConfigError(f"{folder / TABLE_JSON} is inconsistent: its space does not match its fingerprint")
        numeric = (*NUMERIC_TABLE_COLUMNS, "latency_units") if metadata.get("format", 1) >= 2 else NUMERIC_TABLE_COLUMNS
        with reading(folder / TABLE_CSV, what):
            data = (folder / TABLE_CSV).read_bytes()  # read once: checked, then parsed
            if recorded is not None:
                verify_bytes(folder / TABLE_CSV, data, recorded, f"{folder / TABLE_JSON}")
            entries = read_csv(folder / TABLE_CSV, what, columns=("layer", *numeric), numeric=numeric,
                               source=data.decode("utf-8"))
            check_entries(entries, numeric)
            table = cls(space, entries, metadata, calibration)
        with reading(folder / TABLE_JSON, what):
            check_positive(table.calibration, table._lower_bound(), table._scale)
        return table

    # ----- prediction ------------------------------------------------------------------
    def _fill_arrays(self) -> None:
        """Latency of each of the space's distinct layers (NaN: not measured), then 0 for id -1."""
        column = "latency_units" if self.normalised else self.metadata.get("statistic", "median_ms")
        by_key = dict(zip(self.entries["layer"], self.entries[column] * self._scale, strict=True))
        needed = {layer_key(spec) for spec in self.space.layers_at(self.resolutions)}
        missing = needed - set(by_key)
        if missing:
            raise ConfigError(f"latency table lacks {len(missing)} layers its resolutions need, e.g. "
                              f"{sorted(missing)[0]}; build it again")
        self._latency = np.array([by_key.get(layer_key(s), np.nan) for s in self.space.distinct_layers] + [0.0])
        overhead = "call_overhead_units" if self.normalised else "call_overhead_ms"
        # Capped at the fastest layer: a noisy identity-model timing above some layer's own time
        # would otherwise make a sum of many layers, minus their shared overhead, negative.
        measured = self._latency[:-1][np.isfinite(self._latency[:-1])]
        cap = float(measured.min()) if measured.size else 0.0
        self._overhead = min(float(self.metadata.get(overhead, 0.0)) * self._scale, cap)

    @property
    def _scale(self) -> float:
        """Milliseconds per table unit: the reference time when normalised, else 1."""
        return self.speed_ms if self.normalised else 1.0

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
            slope, intercept = self._calibration_of(genes)
            latency = slope * latency + intercept * self._scale
        return latency

    def _calibration_of(self, genes: np.ndarray) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Slope and intercept for each row: its precision's own fit where the table has one."""
        fits = self.calibration.get("by_precision") or {}
        slope, intercept = self.calibration["slope"], self.calibration["intercept"]
        if not fits or not self.space.searches_precision:
            return slope, intercept
        bits = np.asarray(self.space.genes[-1].choices)[np.asarray(genes).reshape(-1, len(self.space.genes))[:, -1]]
        slopes = np.array([fits.get(str(b), {}).get("slope", slope) for b in bits])
        intercepts = np.array([fits.get(str(b), {}).get("intercept", intercept) for b in bits])
        return slopes, intercepts

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
        groups = {tuple(c for c in slot.genes if c != 0) for slot in space.deployed_slots} - {()}
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
    def calibrate(self, archs: Sequence[Arch], measured_ms: Sequence[float],
                  reference_ms: float | Sequence[float] | None = None) -> LatencyTable:
        """A copy whose predictions pass through ``slope * sum + intercept`` fitted by least squares.

        A normalised table fits in reference units: ``measured_ms / reference_ms``, the
        reference time(s) read around those measurements (default: the table's current one).
        """
        measured = np.asarray(measured_ms, dtype=float)
        if len(archs) != len(measured) or len(measured) < 2:
            raise ConfigError(f"calibration needs at least 2 architectures with one measurement each, "
                              f"got {len(archs)} architectures and {len(measured)} measurements")
        raw = self.predict(archs, calibrated=False) / self._scale
        if self.normalised:
            measured = measured / np.asarray(self.speed_ms if reference_ms is None else reference_ms, dtype=float)
        floor = self._lower_bound() / self._scale
        calibration = {**positive_line(raw, measured, floor), "n": int(len(measured)),
                       "units": "reference" if self.normalised else "ms"}
        if self.space.searches_precision:
            calibration["by_precision"] = fit_per_precision(archs, raw, measured, floor)
        return LatencyTable(self.space, self.entries, self.metadata, calibration, speed_ms=self.speed_ms)

    def _fit_calibration(self) -> LatencyTable:
        """Calibrated on the subnets measured during the build, in this table's prediction mode."""
        archs = [self.space.canonical(text) for text in self.metadata["calibration_archs"]]
        measured = self.metadata["calibration_measured"]
        if self.normalised:
            return self.calibrate(archs, [m["latency_units"] for m in measured], reference_ms=1.0)
        return self.calibrate(archs, [m["latency_ms"] for m in measured])

    def normalised_as(self, normalised: bool) -> LatencyTable:
        """This table predicting in reference units (``True``) or from raw milliseconds (``False``),
        recalibrated on its build-time calibration subnets."""
        if normalised and "latency_units" not in self.entries:
            raise ConfigError("this latency table was built without reference timings (format 1); rebuild it "
                              "with `elasticnas profile` to predict in reference units")
        table = LatencyTable(self.space, self.entries, {**self.metadata, "normalised": normalised})
        return table._fit_calibration() if len(self.metadata.get("calibration_measured", ())) >= 2 else table

    # ----- speed of the machine --------------------------------------------------------
    def at_speed(self, reference_ms: float) -> LatencyTable:
        """A copy converting reference units to ms with ``reference_ms`` (normalised tables only)."""
        if not self.normalised:
            raise ConfigError("only a normalised latency table can be rescaled to the machine's current speed")
        if not reference_ms > 0:
            raise ConfigError(f"reference time must be > 0 ms, got {reference_ms}")
        return LatencyTable(self.space, self.entries, self.metadata, self.calibration, speed_ms=reference_ms)

    def reference_clock(self) -> ReferenceClock:
        """A clock timing the reference on this table's device, runtime, threads and batch size."""
        meta = self.metadata
        return ReferenceClock(runtime=meta["runtime"], device=meta["device"], threads=meta["threads"],
                              batch_size=self.batch_size)

    def at_current_speed(self, *, margin: float = 0.1, rescale: bool = True,
                         clock: ReferenceClock | None = None) -> LatencyTable:
        """This table, checked against the machine's speed now.

        Reads the reference once; when it differs from the build-time reading by more than
        ``margin`` (relative), warns once per table and process with both numbers, and a
        normalised table is rescaled to the current speed when ``rescale`` (within the margin
        it keeps its build-time speed, so repeated runs predict identically). The reading is
        left in ``self.current_reference_ms``.
        """
        built = self.metadata.get("reference_ms")
        if built is None or self.metadata.get("reference_version") != REFERENCE_VERSION:
            self._warn_once("no reference", "has no comparable reference timing (built by an older elasticnas); "
                            "rebuild it with `elasticnas profile` to detect speed changes")
            return self
        now = (clock or self.reference_clock()).read()
        self.current_reference_ms = now
        change = relative_change(now, built)
        if abs(change) <= margin:
            return self
        if self.normalised and rescale:
            action = "predictions rescaled to the current speed"
        elif self.normalised:
            action = "predictions stay at the build-time speed"
        else:
            action = "its predictions may be off by as much; rebuild it, or build a normalised one"
        self._warn_once("speed changed", f"was built when the reference workload took {built:.4g} ms; it takes "
                        f"{now:.4g} ms now ({change:+.0%}, beyond the {margin:.0%} margin): {action}")
        if not (self.normalised and rescale):
            return self
        rescaled = self.at_speed(now)
        rescaled.current_reference_ms = now
        return rescaled

    def _warn_once(self, kind: str, message: str) -> None:
        key = (self.metadata.get("space_fingerprint"), self.metadata.get("date"), self.normalised, kind)
        if key not in _WARNED:
            _WARNED.add(key)
            warnings.warn(f"latency table ({self.metadata.get('runtime')}, {self.metadata.get('device')}) {message}",
                          stacklevel=3)
