"""An edited latency table is refused before it predicts; a table never predicts a non-positive time."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from elasticnas.core.errors import ConfigError
from elasticnas.hardware import LatencyTable
from elasticnas.measure import table_folder
from elasticnas.supernet import create_space

from ..test_bad_files import refused


@pytest.mark.parametrize("column, value", [("latency_units", -3.0), ("latency_units", float("nan")),
                                           ("latency_ms", 0.0), ("latency_ms", float("inf")),
                                           ("std_ms", -1.0)])
def test_a_table_with_impossible_timings_is_refused_in_one_line(trained_run, tmp_path, column, value):
    folder = shutil.copytree(table_folder(trained_run, "cpu", "torch"), tmp_path / "table")
    entries = pd.read_csv(folder / "latency_table.csv")
    entries.loc[1, column] = value
    entries.to_csv(folder / "latency_table.csv", index=False)
    with pytest.raises(ConfigError, match="latency_table.csv changed after it was written"):
        LatencyTable.load(folder)  # the JSON's checksum catches the edit
    meta = json.loads((folder / "latency_table.json").read_text())
    del meta["csv_sha256"]  # a table from before checksums: the values themselves are refused
    (folder / "latency_table.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=f"latency_table.csv .*row 2, column {column!r}") as error:
        LatencyTable.load(folder)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("calibration", [{"slope": -1.0, "intercept": 0.0}, {"slope": float("nan"), "intercept": 0},
                                         {"slope": 1.0, "intercept": -1e9}, {"slope": "1", "intercept": 0},
                                         {"slope": 1.0, "intercept": 0.0, "by_precision": {"8": {"slope": 0}}}])
def test_a_calibration_that_could_predict_no_time_is_refused(trained_run, tmp_path, calibration):
    folder = shutil.copytree(table_folder(trained_run, "cpu", "torch"), tmp_path / "table")
    meta = json.loads((folder / "latency_table.json").read_text())
    meta["calibration"] = calibration
    (folder / "latency_table.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="latency_table.json .*calibration"):
        LatencyTable.load(folder)


def test_search_on_an_edited_table_is_refused_and_writes_nothing(run_copy, capsys):
    path = table_folder(run_copy, "cpu", "torch") / "latency_table.csv"
    entries = pd.read_csv(path)
    entries["latency_units"] = -entries["latency_units"]  # every subnet would be "feasible" at a negative time
    entries.to_csv(path, index=False)
    refused(["search", str(run_copy), "--predicted-evals", "50", "--real-evals", "2"], capsys, str(path))
    assert not (run_copy / "search").exists()


def test_predictions_stay_positive_when_the_call_overhead_is_timed_above_the_layers():
    space = create_space("tiny_mbv3", num_classes=10, resolutions=(20,))
    layers = LatencyTable.layers_to_measure(space, (20,))
    rng = np.random.default_rng(0)
    from elasticnas.hardware.lookup import layer_key

    entries = pd.DataFrame({"layer": [layer_key(spec) for spec in layers],
                            "latency_ms": rng.uniform(0.01, 0.05, len(layers))})
    entries["median_ms"] = entries["latency_ms"]
    metadata = {"resolutions": [20], "batch_size": 1, "space_fingerprint": space.fingerprint, "space_name": space.name,
                "device": "cpu", "runtime": "torch", "statistic": "latency_ms",
                "call_overhead_ms": 0.2}  # a loaded machine timed the empty model slower than every layer
    table = LatencyTable(space, entries, metadata)
    subnets = space.sample(np.random.default_rng(1), n=500)
    assert (table.predict(subnets, calibrated=False) > 0).all()
    # noisy end-to-end timings that tilt a free line below zero for the smallest subnets
    calibrated = table.calibrate(subnets[:3], [5.0, 0.01, 0.02])
    assert (calibrated.predict(subnets) > 0).all()
    assert calibrated.cheapest()[0] > 0


def test_an_edited_checkpoint_weight_is_caught_by_its_checksum(run_copy, capsys):
    import torch

    state = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name].view(-1)[0] += 1e-3  # one number, still a valid checkpoint
    torch.save(state, run_copy / "checkpoint.pt")
    refused(["measure", str(run_copy), "--n", "2"], capsys, "checkpoint.pt changed after it was written")
