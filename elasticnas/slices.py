"""A slice table: one weights file and the searched Pareto sizes, each a nested slice of it.

MatFormer ships one model with a table of the sizes cut from it; this is that for any run.
``write_slices`` takes the sizes spread along a run's latest search front, measures each
(latency on the run's runtime next to the table's prediction, memory, validation quality)
and writes ``slices.json`` beside ``weights.safetensors`` (the supernet's weights, and the
batch-norm statistics each slice recalibrated, where its family has batch norm).
``load_slice(folder, budget_ms=..., memory_mb=...)`` returns, at run time and without a
re-export, the best slice within the budgets as a standalone model.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from elasticnas.core.atomic import atomic_write_bytes, atomic_write_json
from elasticnas.core.checksums import sha256_bytes
from elasticnas.core.errors import ConfigError
from elasticnas.core.files import read_csv, read_json, reading
from elasticnas.core.run_layout import EXPORTS, FRONT, SLICES, SLICES_JSON, WEIGHTS
from elasticnas.core.staging import check_replaceable, staged_folder
from elasticnas.hardware import count_all, measure_archs
from elasticnas.hardware.table_build import cpu_model
from elasticnas.measure import latency_table_for
from elasticnas.quality_metric import QualityMetric, quality_of
from elasticnas.runs import latest_search, load_trained
from elasticnas.supernet.catalogue import build_supernet, space_from_config
from elasticnas.supernet.evaluation import calibrated_subnet, score

STATISTICS = "slice_statistics."  # + "{index}.{buffer}": a slice's recalibrated batch-norm buffers


def spread_along(front: pd.DataFrame, sizes: int) -> list[int]:
    """Up to ``sizes`` rows of ``front`` evenly spaced in latency order, the fastest and slowest included."""
    order = np.argsort(front["latency_ms"].to_numpy(dtype=float), kind="stable")
    picks = np.unique(np.round(np.linspace(0, len(order) - 1, min(sizes, len(order)))).astype(int))
    return [int(order[p]) for p in picks]


def _quality(space, result) -> dict:
    metric = quality_of(space)
    return {"val_top1": result.top1, "val_loss": result.loss, metric.column: getattr(result, metric.result_fields[0])}


def write_slices(run_folder: str | Path, out: str | Path, *, sizes: int = 6, runtime: str = "torch",
                 device: str = "cpu", search_folder: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Measure ``sizes`` subnets along the run's latest search front and write the slice table to ``out``."""
    if sizes < 1:
        raise ConfigError(f"a slice table holds at least one size, got sizes={sizes}")
    check_replaceable(out, SLICES_JSON, "slice table")  # before minutes of measuring
    run_folder = Path(run_folder)
    run = load_trained(run_folder)
    space, supernet = run.space, run.supernet
    folder = Path(search_folder) if search_folder is not None else latest_search(run_folder)
    front = read_csv(folder / FRONT, "search front", columns=("arch", "latency_ms"), numeric=("latency_ms",))
    archs = [space.canonical(front["arch"].iloc[i]) for i in spread_along(front, sizes)]
    table = latency_table_for(run_folder, space, device=device, runtime=runtime, progress=progress)
    predicted = table.predict(archs)
    measured = measure_archs(space, archs, runtime=runtime, device=device, progress=progress)
    counts = count_all(space, archs)
    data = run.eval_data("val")
    rows, statistics = [], {}
    for index, arch in enumerate(archs):
        model = calibrated_subnet(supernet, arch, data)
        _, inputs = data.at(arch.resolution, torch.device("cpu"))
        result = score(model, inputs, data.labels, data.eval_batch_size)
        statistics.update({f"{STATISTICS}{index}.{name}": tensor.detach().contiguous().clone()
                           for name, tensor in model.named_buffers() if "running_" in name})
        rows.append({"arch": arch.to_dict(), "predicted_latency_ms": float(predicted[index]),
                     "measured_latency_ms": float(measured[index]), "memory_bytes": int(counts["memory_bytes"][index]),
                     "params": int(counts["params"][index]), "macs": int(counts["macs"][index]),
                     **_quality(space, result)})
    state = {name: tensor.detach().contiguous().clone() for name, tensor in supernet.state_dict().items()}
    weights = save_safetensors({**state, **statistics}, metadata={"space_fingerprint": space.fingerprint})
    with staged_folder(out, marker=SLICES_JSON, what="slice table") as stage:
        atomic_write_bytes(stage / WEIGHTS, weights)
        atomic_write_json(stage / SLICES_JSON, {
            "supernet": space.name, "family": space.family, "space": space.to_config(),
            "space_fingerprint": space.fingerprint, "weights_sha256": sha256_bytes(weights), "runtime": runtime,
            "device": device, "cpu": cpu_model(), "search": str(folder),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "slices": rows})
    return pd.DataFrame(rows)


def _best_within(rows: list[dict], budget_ms: float | None, memory_mb: float | None, metric: QualityMetric) -> int:
    """Index of the slice of the best ``metric`` within the budgets."""
    fits = [i for i, row in enumerate(rows)
            if (budget_ms is None or row["measured_latency_ms"] <= budget_ms)
            and (memory_mb is None or row["memory_bytes"] <= memory_mb * 2**20)]
    if not fits:
        fastest = min(row["measured_latency_ms"] for row in rows)
        smallest = min(row["memory_bytes"] for row in rows) / 2**20
        raise ConfigError(f"no slice fits budget_ms={budget_ms} and memory_mb={memory_mb}: the fastest measured "
                          f"{fastest:.3f} ms, the smallest needs {smallest:.2f} MiB")
    best = metric.best([rows[i][metric.column] for i in fits])
    return next(i for i in fits if rows[i][metric.column] == best)


def load_slice(folder: str | Path, *, budget_ms: float | None = None, memory_mb: float | None = None) -> nn.Module:
    """The best slice of the table in ``folder`` within ``budget_ms`` (its measured latency) and
    ``memory_mb`` (MiB of weights plus KV cache), as a standalone model in eval mode; its row of the
    table is the model's ``slice`` attribute. Nothing pickled is read."""
    folder = Path(folder)
    if not (folder / SLICES_JSON).is_file():
        raise ConfigError(f"no {SLICES_JSON} in {folder}: write a slice table there with "
                          f"`elasticnas slices RUN --out {folder}`")
    table = read_json(folder / SLICES_JSON, "slice table")
    with reading(folder / SLICES_JSON, "slice table"):
        space = space_from_config(table["space"])
        metric = quality_of(space)
        rows = [{"measured_latency_ms": float(r["measured_latency_ms"]), "memory_bytes": int(r["memory_bytes"]),
                 metric.column: float(r[metric.column])} for r in table["slices"]]
    index = _best_within(rows, budget_ms, memory_mb, metric)
    with reading(folder / WEIGHTS, "slice table weights"):
        weights = (folder / WEIGHTS).read_bytes()
        if sha256_bytes(weights) != table["weights_sha256"]:
            raise ConfigError(f"{folder / WEIGHTS} is not the file {folder / SLICES_JSON} was written with "
                              f"(its SHA-256 differs); write the slice table again")
        tensors = load_safetensors(weights)
        supernet = build_supernet(space)
        supernet.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(STATISTICS)})
        arch = space.canonical(table["slices"][index]["arch"])
        model = supernet.extract(arch)
        own = f"{STATISTICS}{index}."
        model.load_state_dict({**model.state_dict(),
                               **{name[len(own):]: t for name, t in tensors.items() if name.startswith(own)}})
    model.slice = table["slices"][index]
    return model.eval()


def slices_and_sample(run_folder: str | Path, budget_ms: float, *, runtime: str = "torch", prompt: str = "def ",
                      new_tokens: int = 60, progress: bool = True) -> tuple[pd.DataFrame, str]:
    """The quickstart's last stage for a language model: the run's slice table in ``exports/slices``,
    and a greedy sample from its best slice within ``budget_ms`` (the fastest slice where none is)."""
    run_folder = Path(run_folder)
    out = run_folder / EXPORTS / SLICES
    table = write_slices(run_folder, out, runtime=runtime, progress=progress)
    fits = table["measured_latency_ms"] <= budget_ms
    model = load_slice(out, budget_ms=budget_ms if fits.any() else float(table["measured_latency_ms"].min()))
    prompt_tokens = list(prompt.encode("utf-8"))
    if getattr(model, "max_positions", 0):  # a learned position table ends the sequence
        new_tokens = max(0, min(new_tokens, model.max_positions - len(prompt_tokens)))
    tokens = model.generate(torch.tensor([prompt_tokens]), new_tokens, temperature=0)
    return table, bytes(tokens[0].tolist()).decode("utf-8", errors="replace")
