from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from elasticnas.hardware import LatencyResult, LatencyTable, measure_latency
from elasticnas.hardware import table_build as lookup_module
from elasticnas.hardware.lookup import layer_key
from elasticnas.hardware.timing import torch_threads
from elasticnas.supernet import ConfigError, InvalidArchitectureError, UnknownNameError, create_space

warnings.filterwarnings("ignore", category=UserWarning)

FAST = {"warmup": 0, "repeats": 2, "rounds": 1, "progress": False}


@pytest.fixture(scope="module")
def small_space():
    return create_space("tiny_mbv3", num_classes=10, in_channels=1, resolutions=(20, 24), depth_choices=(1, 2),
                        kernel_choices=(3, 5), expand_choices=(2, 3), stem_stride=1)


@pytest.fixture(scope="module")
def table(small_space):
    return LatencyTable.build(small_space, **FAST)


def test_latency_result_statistics_by_hand():
    result = LatencyResult.from_samples(list(range(1, 11)), {"runtime": "torch"})
    assert result.median_ms == 5.5 and result.mean_ms == 5.5 and result.runs == 10
    assert result.p10_ms == pytest.approx(1.9) and result.p90_ms == pytest.approx(9.1)
    assert result.trimmed_mean_ms == pytest.approx(5.5)  # mean of 2..9
    assert result.settings == {"runtime": "torch"}


EDGE_RUNTIMES = [pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                                            reason=f'not installed: pip install -e ".[{name}]"'))
                 for name in ("openvino", "executorch")]


@pytest.mark.parametrize("runtime", ["torch", "torchscript", "onnxruntime", *EDGE_RUNTIMES])
def test_measure_latency_on_each_runtime(runtime):
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    result = measure_latency(model, input_shape=(3, 16, 16), runtime=runtime, threads=1, warmup=1, repeats=4)
    assert result.runs == 4 and 0 < result.p10_ms <= result.median_ms <= result.p90_ms
    assert result.settings["runtime"] == runtime and result.settings["threads"] == 1
    assert result.settings["number"] >= 1 and result.settings["input_shape"] == [3, 16, 16]


# Runs in its own process: a method reading freed memory kills the process (segmentation fault).
OUTLIVES_ITS_BYTES = """
import gc, torch
from torch import nn
from elasticnas.hardware.edge_runtimes import executorch_bytes, executorch_method
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()
x = torch.randn(1, 3, 16, 16)
size = len(executorch_bytes(model, x))
method = executorch_method(executorch_bytes(model, x))  # nothing else holds the bytes
gc.collect()
overwrite = [bytes([0xAB]) * (size - 33 + k) for k in range(-64, 64) for _ in range(20)]
outputs = [method.execute([x])[0] for _ in range(200)]
print(max(float((out - model(x)).abs().max()) for out in outputs))
"""


@pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                    reason='not installed: pip install -e ".[executorch]"')
def test_an_executorch_method_outlives_the_bytes_it_was_loaded_from():
    done = subprocess.run([sys.executable, "-c", OUTLIVES_ITS_BYTES], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert float(done.stdout.split()[-1]) < 1e-5  # float32 conv reordering, far below a wrong result


@pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                    reason='not installed: pip install -e ".[executorch]"')
def test_executorch_runs_on_the_threads_asked_and_refuses_a_method_loaded_before_a_resize():
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count as pool_size

    from elasticnas.hardware.edge_runtimes import executorch_bytes, executorch_method

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()
    x = torch.randn(1, 3, 16, 16)
    program, expected = executorch_bytes(model, x), model(x).detach()
    before = pool_size()
    try:
        for threads in (1, 2):
            assert measure_latency(model, input_shape=(3, 16, 16), runtime="executorch", threads=threads, warmup=0,
                                   repeats=1).settings["threads"] == threads
            assert pool_size() == threads
        with torch_threads(1):  # left unset: torch's count, not the pool's default of one per core
            measure_latency(model, input_shape=(3, 16, 16), runtime="executorch", warmup=0, repeats=1)
            assert pool_size() == 1
        one, same = executorch_method(program, threads=1), executorch_method(program, threads=1)
        torch.testing.assert_close(same.execute([x])[0], expected)  # same size: no resize, both usable
        torch.testing.assert_close(one.execute([x])[0], expected)
        two = executorch_method(program, threads=2)
        with pytest.raises(RuntimeError, match="pool of 1 threads.*load the program again"):
            one.execute([x])  # its pool was destroyed by the resize
        torch.testing.assert_close(two.execute([x])[0], expected)
    finally:
        executorch_method(program, threads=before)


@pytest.mark.parametrize("runtime", ["openvino", "executorch"])
def test_a_runtime_that_is_not_installed_names_its_extra(runtime, monkeypatch):
    monkeypatch.setitem(sys.modules, runtime, None)  # as if not installed
    with pytest.raises(ConfigError, match=rf'runtime {runtime!r} is not installed.*pip install -e ".\[{runtime}\]"'):
        measure_latency(nn.Identity(), input_shape=(1, 2, 2), runtime=runtime, warmup=0, repeats=1)


def test_threads_left_unset_give_every_runtime_torchs_count_and_record_it(monkeypatch):
    from elasticnas.hardware import runtimes

    given, real = [], runtimes.onnxruntime_session
    monkeypatch.setattr(runtimes, "onnxruntime_session",
                        lambda onnx_bytes, dev, threads: given.append(threads) or real(onnx_bytes, dev, threads))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # left to itself ONNX Runtime would size its pool by the cores, whatever torch's count
        result = measure_latency(nn.Conv2d(3, 4, 3), input_shape=(3, 8, 8), runtime="onnxruntime", warmup=0,
                                 repeats=1)
    finally:
        torch.set_num_threads(before)
    assert given == [1] and result.settings["threads"] == 1


def test_measure_latency_restores_thread_count():
    before = torch.get_num_threads()
    measure_latency(nn.Identity(), input_shape=(1, 2, 2), threads=1, warmup=0, repeats=1)
    assert torch.get_num_threads() == before


def test_measure_latency_errors_name_what_is_available():
    with pytest.raises(UnknownNameError, match="onnxruntime"):
        measure_latency(nn.Identity(), input_shape=(1, 2, 2), runtime="tensorrt")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="cpu"):
            measure_latency(nn.Identity(), input_shape=(1, 2, 2), device="cuda")
    with pytest.raises(ConfigError, match="repeats"):
        measure_latency(nn.Identity(), input_shape=(1, 2, 2), repeats=0)
    with pytest.raises(ConfigError, match="prepared="):
        measure_latency(None, input_shape=(1, 2, 2))


def test_table_covers_every_layer_once(small_space, table):
    # Spatial sizes, 20 px: 20 | 20 20 10 5 5 3; 24 px: 24 | 24 24 12 6 6 3 (stem stride 1, stages 1 2 2 1 2).
    # Per resolution: stem, fixed block; stage 0 (stride 1, 16 -> 16) has one layer per (k, e); stages 1-3 have
    # a first and a later block per (k, e); stage 4 only its first block (its later blocks run at 3x3 at both
    # resolutions, as do the final expansion and pooling, and the 1x1 feature mix and classifier).
    kinds = 2 * 2  # (kernel, expand) pairs
    per_resolution = 2 + kinds + 3 * 2 * kinds + kinds
    shared = kinds + 4
    assert len(table.entries) == 2 * per_resolution + shared == 76
    assert table.entries["layer"].is_unique


@pytest.mark.parametrize("normalised", [True, False])
def test_prediction_is_the_sum_of_the_subnets_layers(small_space, table, normalised):
    table = table.normalised_as(normalised)
    # normalised: reference units times the build's reference time; raw: the least per-round median in ms
    column, scale = ("latency_units", table.metadata["reference_ms"]) if normalised else ("latency_ms", 1.0)
    by_key = dict(zip(table.entries["layer"], table.entries[column] * scale, strict=True))
    overhead = table.metadata["call_overhead_units" if normalised else "call_overhead_ms"] * scale
    archs = small_space.sample(0, n=20)
    predicted = table.predict(archs)
    for arch, value in zip(archs, predicted, strict=True):
        layers = small_space.layers(arch)
        terms = [by_key[layer_key(s)] for s in layers]
        expected = sum(terms) - (len(layers) - 1) * overhead
        # float64 sums in another order differ by a few ulps of the terms' magnitude, not of the
        # result: on a busy machine the call overhead is near the layers' times and the sum cancels
        rounding = 1e-12 * (sum(abs(t) for t in terms) + abs((len(layers) - 1) * overhead))
        assert value == pytest.approx(expected, rel=1e-12, abs=rounding)
        assert table.predict(arch) == pytest.approx(value, rel=1e-12, abs=rounding)
    if normalised:  # twice as slow a machine: every prediction doubles
        slower = table.at_speed(2 * table.metadata["reference_ms"])
        np.testing.assert_allclose(slower.predict(archs), 2 * predicted, rtol=1e-12)


def test_table_refuses_what_it_was_not_built_for(small_space, table):
    other_res = create_space("tiny_mbv3", num_classes=10, in_channels=1, resolutions=(28,), depth_choices=(1, 2),
                             kernel_choices=(3, 5), expand_choices=(2, 3), stem_stride=1)
    with pytest.raises(InvalidArchitectureError, match="resolutions"):
        table.predict(other_res.max())
    with pytest.raises(ConfigError, match="fingerprint"):
        table.check(other_res)
    with pytest.raises(ConfigError, match="batch_size"):
        table.predict(small_space.max(), batch_size=8)
    table.check(small_space, batch_size=1, device="cpu", runtime="torch")


def test_save_load_round_trip_and_calibration(tmp_path, small_space, table):
    archs = small_space.sample(1, n=8)
    raw = table.predict(archs)
    calibrated = table.calibrate(archs, 2.0 * raw + 0.5)
    assert calibrated.calibration["slope"] == pytest.approx(2.0)
    # a normalised table fits in reference units: the intercept is 0.5 ms over the reference time
    assert calibrated.calibration["intercept"] * table.speed_ms == pytest.approx(0.5)
    assert calibrated.calibration["units"] == "reference"
    np.testing.assert_allclose(calibrated.predict(archs), 2.0 * raw + 0.5)
    np.testing.assert_allclose(calibrated.predict(archs, calibrated=False), raw)
    calibrated.save(tmp_path)
    loaded = LatencyTable.load(tmp_path)
    np.testing.assert_allclose(loaded.predict(archs), calibrated.predict(archs))
    assert loaded.metadata["space_fingerprint"] == small_space.fingerprint
    for field in ("cpu_model", "cpu_cores", "threads", "versions", "date", "batch_size", "device_name"):
        assert field in loaded.metadata
    with pytest.raises(ConfigError, match="at least 2"):
        table.calibrate(archs[:1], [1.0])
    with pytest.raises(ConfigError, match="profile"):
        LatencyTable.load(tmp_path / "missing")


def test_calibration_never_predicts_zero_time_or_less(small_space, table):
    archs = small_space.sample(2, n=6)
    raw = table.predict(archs, calibrated=False)
    order = np.argsort(raw)
    # noisy timings of a few subnets: a free line would fall as the subnets grow, or cross zero
    # well above the smallest subnet, as a 3-subnet int8 fit once did in CI
    falling = np.empty_like(raw)
    falling[order] = np.linspace(3.0, 1.0, len(raw))
    steep = 10.0 * (raw - raw.min()) + 1e-3  # crosses zero just below the smallest of the six
    everything = small_space.sample(3, n=500) + [small_space.min()]
    for measured in (falling, steep):
        calibrated = table.calibrate(archs, measured)
        assert calibrated.calibration["through_origin"] and calibrated.calibration["intercept"] == 0
        assert (calibrated.predict(everything) > 0).all()
        # least squares through 0 (in reference units, where the ms of both sides cancel)
        np.testing.assert_allclose(calibrated.calibration["slope"], raw @ measured / (raw @ raw), rtol=1e-9)
    honest = table.calibrate(archs, 2.0 * raw + 0.5)
    assert not honest.calibration["through_origin"]  # a line that stays positive is kept as fitted


def test_interrupted_build_resumes_where_it_stopped(tmp_path, small_space, monkeypatch):
    calls = {"n": 0}
    real = lookup_module.measure_latency

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 15:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lookup_module, "measure_latency", flaky)
    with pytest.raises(KeyboardInterrupt):
        LatencyTable.build(small_space, out=tmp_path, **FAST)
    partial = (tmp_path / lookup_module.PARTIAL_CSV).read_text().splitlines()
    assert len(partial) == 1 + 14  # header and the 14 layers measured before the interruption
    with open(tmp_path / lookup_module.PARTIAL_CSV, "a") as handle:
        handle.write('"{""torn')  # a row cut short by the kill
    calls["n"] = -1000
    table = LatencyTable.build(small_space, out=tmp_path, **FAST)
    total = len(LatencyTable.layers_to_measure(small_space, small_space.resolutions))
    assert calls["n"] == -1000 + (total - 14) + 1  # the rest of the layers, plus the call-overhead probe
    assert len(table.entries) == total
    assert not (tmp_path / lookup_module.PARTIAL_CSV).exists()
    assert (tmp_path / "latency_table.csv").exists()


def test_each_layer_is_converted_once_and_timed_in_every_round(small_space, monkeypatch):
    from elasticnas.hardware import latency as latency_module

    real_prepare, real_measure, prepared, timed = latency_module.prepare, lookup_module.measure_latency, [], []

    def counted_prepare(model, *args, **kwargs):
        prepared.append(model)
        return real_prepare(model, *args, **kwargs)

    def counted_measure(*args, **kwargs):
        timed.append(kwargs.get("prepared"))
        return real_measure(*args, **kwargs)

    monkeypatch.setattr(latency_module, "prepare", counted_prepare)
    monkeypatch.setattr(lookup_module, "measure_latency", counted_measure)
    table = LatencyTable.build(small_space, **{**FAST, "rounds": 3}, calibrate=2)
    items = len(table.entries) + 2  # layers and calibration subnets
    assert len(prepared) == items + 1  # and the call-overhead probe
    timed = [ready for ready in timed if ready is not None]  # not the call-overhead probe
    assert len(timed) == 3 * items and len({id(ready) for ready in timed}) == items


def test_measure_archs_converts_each_subnet_once_while_the_kept_ones_fit_in_memory(small_space, monkeypatch):
    from elasticnas.hardware import latency as latency_module
    from elasticnas.supernet.static import build_static

    real_prepare, converted = latency_module.prepare, []

    def counted_prepare(model, *args, **kwargs):
        converted.append(model)
        return real_prepare(model, *args, **kwargs)

    monkeypatch.setattr(latency_module, "prepare", counted_prepare)
    smallest, largest = small_space.min(), small_space.max()
    quick = {"warmup": 0, "repeats": 2, "rounds": 3}
    assert latency_module.measure_archs(small_space, [smallest, largest], **quick).shape == (2,)
    assert len(converted) == 2  # once each, timed in all 3 rounds
    room = sum(t.numel() * t.element_size() for t in build_static(small_space, smallest).state_dict().values())
    converted.clear()  # room for the smallest only: the largest is converted in every round
    latency_module.measure_archs(small_space, [smallest, largest], keep_prepared_mb=room / 2**20, **quick)
    assert len(converted) == 1 + 3
    converted.clear()
    latency_module.measure_archs(small_space, [smallest, largest], keep_prepared_mb=0, **quick)
    assert len(converted) == 2 * 3


def test_partial_build_with_other_settings_is_refused(tmp_path, small_space, monkeypatch):
    real = lookup_module.measure_latency
    monkeypatch.setattr(lookup_module, "measure_latency", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        LatencyTable.build(small_space, out=tmp_path, **FAST)
    monkeypatch.setattr(lookup_module, "measure_latency", real)
    with pytest.raises(ConfigError, match="batch_size"):
        LatencyTable.build(small_space, out=tmp_path, batch_size=4, **FAST)


def test_prediction_is_vectorised_and_fast(small_space, table):
    import time

    archs = small_space.sample(3, n=20000)
    start = time.perf_counter()
    table.predict(archs)
    assert 20000 / (time.perf_counter() - start) > 10000
