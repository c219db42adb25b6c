"""The whole pipeline on a language model: train, decode-latency table, measure, fit, search, export,
the slice table, and a sample through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from elasticnas.cli import main
from elasticnas.core.run_layout import (
    EVALUATIONS,
    EXPORTS,
    PREDICTOR_REPORTS,
    PREDICTORS,
    SEARCH,
    SLICES,
    SLICES_JSON,
    TABLES,
)
from elasticnas.hardware import count_all
from elasticnas.pipeline import quickstart, quickstart_memory_cap
from elasticnas.runs import run_space
from elasticnas.text_data import load_corpus

SMALL_TEXT = ["data.name=textfolder", "data.context=32", "data.batch_size=128",
              "supernet.overrides.resolutions=[32]", "train.epochs=1"]


@pytest.mark.slow
def test_quickstart_runs_end_to_end_on_a_language_model(tmp_path, capsys):
    root = tmp_path / "text"
    root.mkdir()
    (root / "topics.txt").write_bytes(load_corpus("pydoc_topics").train[:96_000].tobytes())
    out = tmp_path / "run"
    summary = quickstart(out, supernet="tiny_gpt", overrides=[*SMALL_TEXT, f"data.root={root}"], subnets=12,
                         trials=3, predicted_evals=400, progress=False, table_repeats=3, table_rounds=1,
                         report_folds=2)
    assert len(summary) == 3
    # ranked on bits per byte, lower better, from measurement to predictor, search and export
    evaluations = pd.read_csv(out / EVALUATIONS)
    assert np.allclose(evaluations["val_bits_per_byte"], evaluations["val_loss"] / np.log(2))
    assert (evaluations["val_bits_per_byte_se"] > 0).all()
    assert "val_bits_per_byte" in set(pd.read_csv(out / PREDICTORS / PREDICTOR_REPORTS)["target"])
    archive = pd.read_csv(next((out / SEARCH).glob("*/archive.csv")))
    assert "bits_per_byte" in archive and "accuracy" not in archive
    assert {"predicted_val_bits_per_byte", "test_bits_per_byte"} <= set(summary.columns)
    # a memory cap placed among the measured subnets binds the search and every export
    cap = quickstart_memory_cap(run_space(out), evaluations)
    memory = count_all(run_space(out), [run_space(out).canonical(a) for a in evaluations["arch"]])["memory_bytes"]
    assert memory.min() <= cap * 2**20 < memory.max()
    assert (summary["memory_cap_mib"] == cap).all() and (summary["memory_mib"] <= cap).all()
    assert not archive.loc[archive["feasible"], "memory_bytes"].gt(cap * 2**20).any()
    for folder in summary["export"]:
        report = json.loads((Path(folder) / "report.json").read_text())
        assert report["reloaded_equals_supernet_subnet"] and 0 < report["test_bits_per_byte"] < 8
        assert report["memory_bytes"] == report["size_bytes"] + report["kv_cache_bytes"] > report["size_bytes"]
        assert report["memory_mb"] == cap and report["memory_bytes"] <= cap * 2**20
    table = json.loads((out / EXPORTS / SLICES / SLICES_JSON).read_text())
    assert 1 <= len(table["slices"]) <= 6 and all(0 < row["val_bits_per_byte"] < 8 for row in table["slices"])
    capsys.readouterr()
    assert main(["generate", str(out / EXPORTS / SLICES), "--prompt", "def ", "--tokens", "20"]) == 0
    printed = capsys.readouterr().out
    assert "ms per token measured" in printed and "def " in printed
    assert main(["search", str(out), "--predicted-evals", "200", "--max-memory-mb", "2", "--out",
                 str(tmp_path / "capped")]) == 0
    # the prompt's prefill as a second latency: its own table, an objective and a budget
    assert main(["search", str(out), "--predicted-evals", "200", "--objectives",
                 "bits_per_byte,latency,latency_prefill", "--out", str(tmp_path / "phases")]) == 0
    assert (out / TABLES / "cpu_torch_prefill" / "latency_table.json").exists()
    phases = pd.read_csv(tmp_path / "phases" / "archive.csv")
    prefill = phases["latency_prefill_ms"]
    assert (prefill > 0).all() and not np.allclose(prefill, phases["latency_ms"])
    budget = float(prefill.median())
    assert main(["search", str(out), "--predicted-evals", "200", "--phase-budget-ms", f"prefill={budget}",
                 "--out", str(tmp_path / "prefill_capped")]) == 0
    capped = pd.read_csv(tmp_path / "prefill_capped" / "archive.csv")
    assert capped["feasible"].any() and not capped.loc[capped["feasible"], "latency_prefill_ms"].gt(budget).any()
