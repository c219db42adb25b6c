"""Precision as a gene of any family: int8 subnets in spaces, counters, latency tables, accuracy and export."""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

from elasticnas.core.errors import ConfigError, InvalidArchitectureError
from elasticnas.export import export_subnet, int8_runtime_of
from elasticnas.hardware.counting import count_all, model_size_bytes
from elasticnas.hardware.latency import measure_latency
from elasticnas.hardware.lookup import LatencyTable
from elasticnas.hardware.quantize import (
    OnnxInt8Model,
    evaluate_deployed,
    int8_files,
    int8_model,
    load_int8,
    quantize_onnx,
    quantized_io,
    require_int8,
)
from elasticnas.hardware.runtime_parts import export_onnx_bytes
from elasticnas.predictors.encoding import feature_names
from elasticnas.runs import load_trained
from elasticnas.supernet import create_space
from elasticnas.supernet.catalogue import build_supernet, space_from_config
from elasticnas.supernet.evaluation import calibrated_subnet, evaluate, score
from elasticnas.supernet.specs import QuantizedSpec, spec_from_dict, spec_to_dict
from tests.conftest import image_presets

warnings.filterwarnings("ignore", category=UserWarning)
SMALL = [n for n in image_presets("tiny_*")]
# the runtimes that quantize, the optional ones skipped where their extra is not installed
NEEDS = {"openvino": ("openvino", "nncf"), "executorch": ("executorch", "torchao")}
INT8_RUNTIMES = ["onnxruntime", *[
    pytest.param(name, marks=pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in modules),
                                                reason=f'optional runtime {name!r}: pip install -e ".[{name}]"'))
    for name, modules in NEEDS.items()]]


def _int8(space):
    return replace(space, precisions=(8, 32))


@pytest.mark.parametrize("name", SMALL)
def test_a_space_that_searches_int8_adds_one_last_gene_and_doubles_its_size(name):
    plain = create_space(name, num_classes=10)
    both = _int8(plain)
    assert both.genes[:-1] == plain.genes and both.genes[-1].choices == (8, 32)
    assert both.genes[-1].dimension == "precision" and both.size == 2 * plain.size
    # a float32 space is what it was: same fingerprint, same config, archs without a precision key
    assert replace(plain, precisions=[32]).fingerprint == plain.fingerprint
    assert "precisions" not in plain.to_config() and "precision" not in plain.max().to_dict()
    assert both.fingerprint != plain.fingerprint and space_from_config(both.to_config()) == both
    assert both.min().precision == 8 and both.max().precision == 32
    archs = both.sample(0, n=200)
    assert {a.precision for a in archs} == {8, 32}
    assert both.decode(both.encode(archs)) == archs
    assert [both.canonical(a.to_json()) for a in archs] == archs
    int8 = next(a for a in archs if a.precision == 8)
    assert int8.to_dict()["precision"] == 8
    without = {k: v for k, v in int8.to_dict().items() if k != "precision"}
    assert plain.canonical(without) == replace(int8, precision=32) == both.canonical(without)


def test_precision_outside_the_space_or_unknown_is_refused_by_name():
    plain = create_space("tiny_mbv3", num_classes=10)
    with pytest.raises(InvalidArchitectureError, match=r"precision=8 \(int8\) is not searched .*precisions are \[32\]"):
        plain.validate(replace(plain.max(), precision=8))
    with pytest.raises(InvalidArchitectureError, match="precision=16 is not a known number format"):
        replace(plain.max(), precision=16)
    for bad in ([16, 32], [8, 8], [], ["8"]):
        with pytest.raises(ConfigError, match="precisions must be distinct bit widths among"):
            create_space("tiny_mbv3", num_classes=10, precisions=bad)


@pytest.mark.parametrize("name", SMALL)
def test_int8_layers_are_keyed_apart_and_counted_like_their_float32_twins(name):
    both = _int8(create_space(name, num_classes=10))
    plain = create_space(name, num_classes=10)
    layers = both.distinct_layers
    quantized = [s for s in layers if isinstance(s, QuantizedSpec)]
    assert len(quantized) * 2 == len(layers) == 2 * len(plain.distinct_layers)
    assert {q.layer for q in quantized} == set(plain.distinct_layers) and {q.bits for q in quantized} == {8}
    assert all(spec_from_dict(spec_to_dict(s)) == s for s in quantized[:20])
    archs = both.sample(1, n=50)
    twins = [replace(a, precision=32) for a in archs]
    ids = both.layer_ids(both.encode(archs))
    for arch, row in zip(archs, ids, strict=True):
        on = [layers[i] for i in row if i >= 0]
        assert all(isinstance(s, QuantizedSpec) == (arch.precision == 8) for s in on)
    costs, twin_costs = count_all(both, archs), count_all(both, twins)
    np.testing.assert_array_equal(costs["macs"], twin_costs["macs"])
    np.testing.assert_array_equal(costs["params"], twin_costs["params"])
    # one byte per value at int8 against four at float32
    factor = np.array([4 if a.precision == 8 else 1 for a in archs])
    np.testing.assert_array_equal(costs["size_bytes"] * factor, twin_costs["size_bytes"])
    assert [model_size_bytes(both, a) for a in archs] == costs["size_bytes"].tolist()


def test_predictor_features_include_the_precision():
    both = _int8(create_space("tiny_mbv3", num_classes=10))
    assert feature_names(both, "ordinal")[-1] == "precision"
    assert {"precision=8", "precision=32"} <= set(feature_names(both, "onehot"))


def test_runtimes_without_an_int8_quantizer_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="runtime 'torch' cannot run int8 subnets here.*onnxruntime"):
        measure_latency(torch.nn.Conv2d(3, 4, 3), input_shape=(3, 8, 8), repeats=1, warmup=0, precision=8)
    both = _int8(create_space("tiny_mbv3", num_classes=10, resolutions=(20,)))
    with pytest.raises(ConfigError, match="cannot run int8"):
        LatencyTable.build(both, runtime="torch", repeats=1, warmup=0, rounds=1, progress=False)


def test_onnxruntime_int8_model_is_quantized_and_close_to_float32():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 8, 3),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()
    images = torch.rand(64, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    quantized = int8_model(model, images, runtime="onnxruntime")
    graph = onnx.load_from_string(quantized.onnx_bytes).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)  # the weights are int8
    with torch.no_grad():
        expected = model(images)
    produced = quantized(images)
    assert produced.shape == expected.shape
    # 8-bit ranges over min-max calibration: errors are a few steps of 1/255 of each range, far from 10%
    error = (produced - expected).abs().max() / expected.abs().max()
    assert 0 < error < 0.1
    assert torch.equal(OnnxInt8Model(quantized.onnx_bytes)(images), produced)  # deterministic, reloadable


def _small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                               torch.nn.Conv2d(16, 32, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(32, 5)).eval()


def _int8_weights(graph) -> list[tuple[int, ...]]:
    """Shapes of the int8 weight tensors (per-channel zero points are int8 too, with one dimension)."""
    return sorted(tuple(t.dims) for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) > 1)


def test_onnxruntime_quantizes_only_the_layers_asked_for_and_refuses_layers_the_graph_lacks():
    model = _small_cnn()
    images = torch.rand(32, 3, 10, 10, generator=torch.Generator().manual_seed(2))
    onnx_bytes = export_onnx_bytes(model, images[:1], dynamic_batch=True)
    calibration = [images.numpy()]
    partial = quantize_onnx(onnx_bytes, calibration, only_layers=[3])
    graph = onnx.load_from_string(partial).graph
    assert _int8_weights(graph) == [(32, 16, 3, 3)]  # layer 3 (a conv); layer 0 and the linear layer stay float32
    whole = onnx.load_from_string(quantize_onnx(onnx_bytes, calibration)).graph
    assert _int8_weights(whole) == [(5, 32), (16, 3, 3, 3), (32, 16, 3, 3)]
    with torch.no_grad():
        expected = model(images)
    produced = OnnxInt8Model(partial)(images)
    assert 0 < (produced - expected).abs().max() / expected.abs().max() < 0.1
    with pytest.raises(ConfigError, match=r"no node of layers \[99\]"):
        quantize_onnx(onnx_bytes, calibration, only_layers=[99])


def test_an_int8_layer_with_8_bit_input_and_output_computes_what_it_computes_between_float32_borders():
    import onnxruntime as ort
    from onnx import helper

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 1)).eval()
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    whole = onnx.load_from_string(quantize_onnx(export_onnx_bytes(model, x[:1], dynamic_batch=True), [x.numpy()]))
    inner = onnx.load_from_string(quantized_io(whole.SerializeToString()))
    assert [v.type.tensor_type.elem_type for v in (*inner.graph.input, *inner.graph.output)] == [
        onnx.TensorProto.UINT8, onnx.TensorProto.UINT8]
    assert len(inner.graph.node) == len(whole.graph.node) - 2  # one quantize and one dequantize step fewer
    # the whole graph also gives its quantized input, and the dequantize step's parameters give the output
    quantize_in = next(n for n in whole.graph.node if n.op_type == "QuantizeLinear" and "input" in n.input)
    dequantize_out = next(n for n in whole.graph.node if "output" in n.output)
    whole.graph.output.append(helper.make_tensor_value_info(quantize_in.output[0], onnx.TensorProto.UINT8, None))
    expected, quantized_input = ort.InferenceSession(whole.SerializeToString()).run(None, {"input": x.numpy()})
    (produced,) = ort.InferenceSession(inner.SerializeToString()).run(None, {"input": quantized_input})
    scale, zero = (onnx.numpy_helper.to_array(next(t for t in whole.graph.initializer if t.name == name))
                   for name in dequantize_out.input[1:])
    np.testing.assert_array_equal((produced.astype(np.float32) - np.float32(zero)) * scale, expected)


@pytest.mark.parametrize("runtime", INT8_RUNTIMES)
def test_each_int8_runtime_quantizes_with_its_own_tool_close_to_float32(runtime):
    model = _small_cnn()
    images = torch.rand(40, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    files = int8_files(model, images, runtime=runtime)
    assert tuple(files) == require_int8(runtime).files
    quantized = require_int8(runtime).load(files)
    with torch.no_grad():
        expected = model(images)
    produced = quantized(images)  # any number of images, also for a program of batch 1
    assert produced.shape == expected.shape and produced.dtype == torch.float32
    error = (produced - expected).abs().max() / expected.abs().max()
    # quantized (a float32 copy would differ by ~1e-7), within a few 8-bit steps of each range
    assert 1e-4 < error < 0.1, error
    assert torch.equal(require_int8(runtime).load(files)(images), produced)  # deterministic, reloadable
    np.testing.assert_array_equal(quantized(images[:7]).numpy(), produced[:7].numpy())  # rows do not mix
    timed = measure_latency(model, input_shape=(3, 12, 12), runtime=runtime, repeats=2, warmup=0, precision=8)
    assert timed.median_ms > 0 and timed.settings["precision"] == 8


def test_an_unknown_way_of_timing_int8_layers_is_refused_naming_the_ways():
    both = _int8(create_space("tiny_mbv3", num_classes=10, resolutions=(20,)))
    with pytest.raises(ConfigError, match=r"int8_layer_io='uint8'; choose one of \['8-bit', 'float32'\]"):
        LatencyTable.build(both, runtime="onnxruntime", int8_layer_io="uint8", progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("layer_io", [None, "8-bit"])
def test_an_int8_table_measures_both_precisions_and_calibrates_each(tmp_path, monkeypatch, layer_io):
    from elasticnas.hardware import table_build

    prepared, real = [], table_build.prepare_for_timing
    monkeypatch.setattr(table_build, "prepare_for_timing", lambda module, **kw: prepared.append(
        (type(module).__name__, kw["precision"], kw["quantized_io"])) or real(module, **kw))
    both = _int8(create_space("tiny_mbv3", num_classes=10, resolutions=(20,)))
    table = LatencyTable.build(both, runtime="onnxruntime", repeats=2, warmup=0, rounds=1, calibrate=6,
                               progress=False, out=tmp_path, threads=1,
                               **({"int8_layer_io": layer_io} if layer_io else {}))
    # by default int8 layers are timed between float32 borders; with 8-bit ones, as inside a
    # subnet; calibration subnets are always timed end to end
    assert table.metadata["int8_layer_io"] == (layer_io or "float32")
    subnets = [p for p in prepared if p[0] == "Sequential"]
    assert len(subnets) == 6 and not any(quantized for *_, quantized in subnets)
    layers = [(bits, quantized) for name, bits, quantized in prepared if name != "Sequential"]
    assert {bits for bits, _ in layers} == {8, 32}
    assert all(quantized == (layer_io == "8-bit" and bits == 8) for bits, quantized in layers)
    keys = set(table.entries["layer"])
    assert sum('"QuantizedSpec"' in k for k in keys) == len(keys) / 2 == len(both.layers_at([20])) / 2
    assert set(table.calibration["by_precision"]) == {"8", "32"}
    archs = both.sample(3, n=40)
    predicted = table.predict(archs)
    assert np.isfinite(predicted).all() and (predicted > 0).all()
    np.testing.assert_array_equal(LatencyTable.load(tmp_path).predict(archs), predicted)
    int8 = [a for a in archs if a.precision == 8]
    raw = table.predict(int8, calibrated=False)
    fit = table.calibration["by_precision"]["8"]
    np.testing.assert_allclose(table.predict(int8), fit["slope"] * raw + fit["intercept"] * table.speed_ms)


@pytest.fixture(scope="module")
def int8_run(trained_run):
    """The trained float32 run's weights in a supernet of the same space searching int8 too."""
    run = load_trained(trained_run)
    space = _int8(run.space)
    supernet = build_supernet(space)
    supernet.load_state_dict(run.supernet.state_dict())  # precision changes no module
    return run, space, supernet.eval()


@pytest.mark.slow
def test_int8_accuracy_is_that_of_the_quantized_subnet(int8_run):
    run, space, supernet = int8_run
    data = run.eval_data("val")
    arch = replace(space.max(), precision=8)
    as_float = evaluate(supernet, replace(arch, precision=32), data)
    assert evaluate_deployed(supernet, replace(arch, precision=32), data, runtime="onnxruntime") == as_float
    deployed = evaluate_deployed(supernet, arch, data, runtime="onnxruntime")
    calibration, images = data.at(arch.resolution, torch.device("cpu"))
    by_hand = int8_model(calibrated_subnet(supernet, arch, data), calibration, runtime="onnxruntime")
    assert deployed == score(by_hand, images, data.labels)
    assert deployed.images == as_float.images and deployed.loss != as_float.loss
    with pytest.raises(ConfigError, match="cannot run int8"):
        evaluate_deployed(supernet, arch, data, runtime="torch")


@pytest.mark.parametrize("runtime", INT8_RUNTIMES)
def test_an_int8_export_writes_the_quantized_model_and_checks_it(int8_run, tmp_path, runtime):
    run, space, supernet = int8_run
    data = run.eval_data("test")
    arch = replace(space.middle(), precision=8)
    model = calibrated_subnet(supernet, arch, data)
    with pytest.raises(ConfigError, match="calibration_images"):
        export_subnet(model, space, arch, tmp_path / "missing", formats=("safetensors", "onnx"))
    calibration, images = data.at(arch.resolution, torch.device("cpu"))
    report = export_subnet(model, space, arch, tmp_path / "out", formats=("safetensors", "onnx"),
                           calibration_images=calibration, int8_runtime=runtime)
    written = require_int8(runtime).files
    assert set(written) <= set(report["files"]) and int8_runtime_of(tmp_path / "out") == runtime
    # int8 weights: smaller than the float32 model (OpenVINO's .xml is the graph, its .bin the weights)
    assert report["files"][written[0]] < report["files"]["model.onnx"]
    assert report["int8_vs_float32_max_relative_difference"] > 0  # quantized, not a copy of float32
    # a one-epoch subnet's logits are nearly tied, so int8 may swap close classes (70-85% agree with
    # float32 here); a broken quantization agrees by chance, about 1 in 10
    assert report["int8_agrees_with_float32"] > 0.5
    assert max(report["max_relative_difference"].values()) <= 1e-4  # the float32 formats still match exactly
    deployed = load_int8(tmp_path / "out", runtime)(images[:50])
    with torch.no_grad():
        assert (deployed.argmax(1) == model(images[:50]).argmax(1)).float().mean() > 0.5
    if runtime == "onnxruntime":  # quantizing again gives the same model (the others take 20-50 s to lower)
        assert torch.equal(deployed, int8_model(model, calibration, runtime=runtime)(images[:50]))


def test_the_command_line_refuses_int8_on_a_runtime_without_a_quantizer_before_any_work(tmp_path, capsys):
    from elasticnas.cli import main

    out = tmp_path / "quick"
    assert main(["quickstart", "--out", str(out), "--precision", "int8", "--runtime", "torch"]) == 2
    assert "cannot run int8" in capsys.readouterr().err and not out.exists()
    table = tmp_path / "table"
    assert main(["profile", "--supernet", "tiny_mbv3", "--precision", "int8", "--out", str(table)]) == 2
    assert "cannot run int8" in capsys.readouterr().err
