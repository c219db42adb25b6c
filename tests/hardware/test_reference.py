"""Speed-normalised timing: the reference clock, drift repeats, tables in reference units, speed checks."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from elasticnas.cli import main
from elasticnas.hardware import LatencyTable, measure_latency
from elasticnas.hardware import lookup as lookup_module
from elasticnas.hardware.reference import ReferenceClock, reference_model
from elasticnas.hardware.table_build import _interleaved_order
from elasticnas.hardware.table_check import agreement, predictions_at_two_speeds
from elasticnas.supernet import ConfigError, create_space

FAST = {"warmup": 0, "repeats": 2, "rounds": 1, "progress": False}


class ScriptedClock(ReferenceClock):
    """A reference clock whose readings are given, to play a machine that changes speed."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)

    def read(self) -> float:
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        self.readings.append(value)
        self._last = (time.perf_counter(), value)
        return value


@pytest.fixture(scope="module")
def small_space():
    return create_space("tiny_mbv3", num_classes=10, in_channels=1, resolutions=(20,), depth_choices=(1, 2),
                        kernel_choices=(3, 5), expand_choices=(2, 3), stem_stride=1)


@pytest.fixture(scope="module")
def table(small_space):
    return LatencyTable.build(small_space, calibrate=3, **FAST)


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(lookup_module, "_WARNED", set())


def test_reference_model_is_the_same_everywhere_and_leaves_the_seed_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first, second = reference_model(), reference_model()
    assert torch.rand(1) == expected_next  # building it did not consume the caller's random stream
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(first(x), second(x))


def test_a_real_clock_reads_positive_times_and_reuses_a_fresh_reading():
    clock = ReferenceClock(repeats=2, min_run_ms=0.5, reuse_s=60)
    first = clock.read()
    assert first > 0 and clock.before() == first and len(clock.readings) == 1
    clock.reuse_s = 0
    clock.before()
    assert len(clock.readings) == 2


def test_measurement_is_repeated_while_the_reference_drifts():
    # 1.0 -> 1.5 and 1.5 -> 2.25 move by 50% (beyond 10%): two repeats; 2.25 -> 2.3 holds still
    clock = ScriptedClock([1.0, 1.5, 2.25, 2.3])
    result = measure_latency(nn.Identity(), input_shape=(1, 2, 2), warmup=0, repeats=2, reference=clock)
    assert result.retries == 2 and len(clock.events) == 2
    assert result.reference_ms == pytest.approx((2.25 + 2.3) / 2)
    assert result.reference_drift == pytest.approx(0.05 / 2.25)
    assert result.ratio == pytest.approx(result.median_ms / result.reference_ms)


def test_repeats_are_bounded_and_keep_the_steadiest_attempt():
    clock = ScriptedClock([1.0, 2.0, 3.0, 6.0])  # drifts 100%, 50%, 100%
    result = measure_latency(nn.Identity(), input_shape=(1, 2, 2), warmup=0, repeats=2, reference=clock,
                             max_retries=2)
    assert result.retries == 2 and len(clock.events) == 3
    assert result.reference_ms == pytest.approx(2.5) and result.reference_drift == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="max_drift"):
        measure_latency(nn.Identity(), input_shape=(1, 2, 2), reference=clock, max_drift=0)
    with pytest.raises(ConfigError, match="reference clock"):
        _ = measure_latency(nn.Identity(), input_shape=(1, 2, 2), warmup=0, repeats=1).ratio


def test_calibration_subnets_are_spread_among_the_layers():
    order = _interleaved_order(np.random.default_rng(0), 10, 12)
    assert sorted(order) == list(range(12))
    assert order.index(10) == 2 and order.index(11) == 9  # after 2 and after 8 of the 10 layers
    assert _interleaved_order(np.random.default_rng(0), 10, 10) == list(np.random.default_rng(0).permutation(10))


def test_table_keeps_both_units_and_calibrates_in_its_own(small_space, table):
    assert table.normalised and table.metadata["reference_ms"] > 0
    assert {"latency_ms", "latency_units", "reference_ms"} <= set(table.entries.columns)
    # one round: a layer's units are its median over the reference time around it
    np.testing.assert_allclose(table.entries["latency_units"] * table.entries["reference_ms"],
                               table.entries["median_ms"], rtol=1e-9)
    assert len(table.metadata["calibration_archs"]) == 3 and len(table.metadata["calibration_measured"]) == 3
    assert table.calibration["units"] == "reference" and table.calibration["n"] == 3
    raw = table.normalised_as(False)
    assert not raw.normalised and raw.calibration["units"] == "ms"
    archs = [small_space.canonical(a) for a in table.metadata["calibration_archs"]]
    measured_ms = [m["latency_ms"] for m in table.metadata["calibration_measured"]]
    uncalibrated = raw.predict(archs, calibrated=False)
    if raw.calibration["through_origin"]:  # three noisy timings gave a line not positive for the fastest subnet
        slope, intercept = np.dot(uncalibrated, measured_ms) / np.dot(uncalibrated, uncalibrated), 0.0
    else:
        slope, intercept = np.polyfit(uncalibrated, measured_ms, 1)
    np.testing.assert_allclose(raw.predict(archs), slope * uncalibrated + intercept)


def test_a_table_used_at_another_speed_warns_once_and_rescales(small_space, table):
    archs = small_space.sample(0, n=10)
    built = table.metadata["reference_ms"]
    with pytest.warns(UserWarning, match=r"takes .* ms now \(\+100%, beyond the 10% margin\): predictions rescaled"):
        slower = table.at_current_speed(clock=ScriptedClock([2 * built]))
    np.testing.assert_allclose(slower.predict(archs), 2 * table.predict(archs), rtol=1e-12)
    assert slower.current_reference_ms == 2 * built
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per table and process
        table.at_current_speed(clock=ScriptedClock([2 * built]))
        same = table.at_current_speed(clock=ScriptedClock([1.05 * built]))  # within the margin: no change
        kept = table.at_current_speed(rescale=False, clock=ScriptedClock([3 * built]))
    np.testing.assert_allclose(same.predict(archs), table.predict(archs))
    np.testing.assert_allclose(kept.predict(archs), table.predict(archs))
    raw = table.normalised_as(False)
    with pytest.warns(UserWarning, match="may be off by as much"):
        unchanged = raw.at_current_speed(clock=ScriptedClock([0.5 * built]))
    np.testing.assert_allclose(unchanged.predict(archs), raw.predict(archs))
    with pytest.raises(ConfigError, match="only a normalised"):
        raw.at_speed(1.0)


def test_a_table_from_before_normalisation_still_loads_and_predicts_raw(tmp_path, small_space, table):
    table.save(tmp_path)
    metadata = json.loads((tmp_path / "latency_table.json").read_text())
    for key in ("reference_ms", "reference_version", "normalised", "call_overhead_units", "calibration", "csv_sha256"):
        metadata.pop(key, None)
    metadata["format"] = 1
    (tmp_path / "latency_table.json").write_text(json.dumps(metadata))
    entries = pd.read_csv(tmp_path / "latency_table.csv").drop(columns=["latency_units"])
    (tmp_path / "latency_table.csv").write_text(entries.to_csv(index=False))
    old = LatencyTable.load(tmp_path)
    archs = small_space.sample(1, n=5)
    assert not old.normalised
    np.testing.assert_allclose(old.predict(archs), table.normalised_as(False).predict(archs, calibrated=False))
    with pytest.warns(UserWarning, match="no comparable reference timing"):
        assert old.at_current_speed() is old
    with pytest.raises(ConfigError, match="format 1"):
        old.normalised_as(True)


def test_agreement_by_hand():
    scores = agreement(np.array([1.0, 2.0, 3.3, 5.0]), np.array([1.0, 2.1, 3.0, 4.0]))
    assert scores["within10"] == 0.75  # errors 0, 4.8%, 10%, 25%
    assert scores["mape"] == pytest.approx((0 + 0.1 / 2.1 + 0.1 + 0.25) / 4)
    assert scores["tau"] == pytest.approx(1.0)


@pytest.mark.parametrize("normalised", [True, False])
def test_a_check_scores_the_table_as_built_and_rescaled_by_the_reference_now(table, small_space, normalised):
    chosen = table.normalised_as(normalised)
    built = chosen.metadata["reference_ms"]
    archs = small_space.sample(2, n=4)
    as_built, rescaled = predictions_at_two_speeds(chosen, archs, now_ms=1.5 * built)
    np.testing.assert_allclose(as_built, chosen.predict(archs))  # what search and export use
    np.testing.assert_allclose(rescaled, 1.5 * as_built, rtol=1e-9)  # a machine 50% slower than at build
    slow = agreement(rescaled, 1.5 * as_built)
    assert slow["within10"] == 1.0 and slow["median_ratio"] == pytest.approx(1.0)
    assert agreement(as_built, 1.5 * as_built)["median_ratio"] == pytest.approx(1 / 1.5)


def test_profile_check_measures_fresh_subnets_against_the_table(tmp_path, capsys):
    out = tmp_path / "table"
    base = ["profile", "--resolutions", "20", "--repeats", "2", "--rounds", "1", "--warmup", "0", "--out", str(out)]
    assert main([*base, "--supernet", "tiny_mbv3", "--in-channels", "1", "--calibrate", "2"]) == 0
    built = LatencyTable.load(out)
    assert main(["profile", "--out", str(out), "--check", "3"]) == 0  # no --supernet: the table says
    printed = capsys.readouterr().out
    assert "3 fresh subnets, 2 rounds" in printed and "round vs round" in printed
    assert "table as built vs measured" in printed and "table rescaled vs measured" in printed
    rows = pd.read_csv(out / "latency_check.csv")
    assert len(rows) == 3 and (rows["measured_ms"] > 0).all() and (rows["predicted_rescaled_ms"] > 0).all()
    assert not set(rows["arch"]) & set(built.metadata["calibration_archs"])  # fresh, not the calibration ones
    assert main(["profile", "--out", str(tmp_path / "none"), "--check", "3"]) == 2
    assert "--supernet is needed" in capsys.readouterr().err
    # a check that cannot run is refused before a table is built, leaving no folder
    assert main([*base[:-1], str(tmp_path / "unbuilt"), "--supernet", "tiny_mbv3", "--check", "1"]) == 2
    assert "at least 2 subnets" in capsys.readouterr().err and not (tmp_path / "unbuilt").exists()


@pytest.mark.parametrize(("field", "value"), [("reference_ms", ""), ("reference_ms", 0), ("normalised", "yes"),
                                              ("call_overhead_units", -1.0)])
def test_a_table_with_a_spoiled_timing_field_is_refused_by_name(tmp_path, table, field, value):
    table.save(tmp_path)
    metadata = json.loads((tmp_path / "latency_table.json").read_text())
    metadata[field] = value
    (tmp_path / "latency_table.json").write_text(json.dumps(metadata))
    with pytest.raises(ConfigError, match=rf"latency_table.json is not a valid latency table.*{field}"):
        LatencyTable.load(tmp_path)
