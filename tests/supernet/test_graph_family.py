"""The graph-derived family: any model made elastic (``elasticize``), checked on hand-written models
covering residual stages, concatenations, branches, squeeze-excitation, channels-last norms and a
shared module, plus the models it must refuse or partly fix."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch
from torch import nn

from elasticnas.cli import main
from elasticnas.export import export_program
from elasticnas.hardware import count_all, count_macs, count_params
from elasticnas.hardware.runtime_parts import export_onnx_bytes
from elasticnas.supernet import ConfigError, build_supernet, space_from_config
from elasticnas.supernet.families.graph import GraphCaptureError, elasticize
from tests.conftest import hook_counts, randomise_
from tests.supernet import graph_models

SIZE = 16


def _model(name: str, seed: int = 0) -> nn.Module:
    model = graph_models.HAND_WRITTEN[name]()
    randomise_(model, seed)  # random BN statistics too: any slicing slip changes the outputs
    return model.eval()


def _image(resolution: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 1, resolution, resolution, generator=torch.Generator().manual_seed(seed))


def _close(actual: torch.Tensor, expected: torch.Tensor, relative: float) -> None:
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, rtol=0, atol=relative * scale)


@pytest.fixture(scope="module", params=sorted(graph_models.HAND_WRITTEN))
def elastic(request):
    model = _model(request.param)
    return request.param, model, elasticize(model, _image(SIZE)).eval()


def test_the_largest_subnet_is_the_original_model(elastic):
    # Re-ordering channels permutes the terms of each consumer's float32 sums. A sum of n terms
    # then moves by at most about n * 2**-24 of the sum of their magnitudes; with n <= 9 * 64
    # terms per output here and outputs of order 1, 1e-4 of the output scale is a wide margin.
    _, model, net = elastic
    x = _image(SIZE, seed=3)
    with torch.no_grad():
        _close(net(x, net.space.max()), model(x), 1e-4)


def test_extracted_subnets_equal_the_supernet_and_are_plain_torch(elastic):
    # The same kernels run on the same values in both (a slice or its copy), so only a kernel's
    # own choice of summation order could differ: bounded well below 1e-6 of the output scale.
    _, _, net = elastic
    space = net.space
    for arch in [space.max(), space.min(), *space.sample(7, n=3)]:
        static = net.extract(arch).eval()
        assert not any(type(m).__module__.startswith("elasticnas") for m in static.modules())
        x = _image(arch.resolution)
        with torch.no_grad():
            _close(static(x), net(x, arch), 1e-6)


def test_counts_are_exact_against_torch_flop_counter(elastic):
    _, _, net = elastic
    space = net.space
    archs = [space.max(), space.min(), *space.sample(11, n=3)]
    batch = count_all(space, archs)
    for i, arch in enumerate(archs):
        static = net.extract(arch)
        params, macs = hook_counts(static, _image(arch.resolution, batch=1))
        assert count_params(space, arch) == params == sum(p.numel() for p in static.parameters())
        assert count_macs(space, arch) == macs == batch["macs"][i]


def test_subnets_export_to_torch_export_and_onnx(elastic):
    import onnxruntime as ort

    _, _, net = elastic
    for arch in (net.space.min(), net.space.sample(5)):
        static = net.extract(arch).eval()
        x = _image(arch.resolution)
        with torch.no_grad():
            expected = static(x)
        program = export_program(static, x)
        _close(program.module()(x), expected, 1e-5)
        session = ort.InferenceSession(export_onnx_bytes(static, x, dynamic_batch=True))
        onnx_out = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        _close(onnx_out, expected, 1e-4)  # ONNX Runtime fuses and reorders float32 sums


def test_the_space_round_trips_through_json(elastic):
    _, _, net = elastic
    again = space_from_config(json.loads(json.dumps(net.space.to_config())))
    assert again.fingerprint == net.space.fingerprint
    archs = net.space.sample(3, n=5)
    assert (count_all(again, archs)["macs"] == count_all(net.space, archs)["macs"]).all()
    assert again.decode(again.encode(archs)) == [net.space.canonical(a) for a in archs]


def test_channels_are_ordered_by_importance_without_changing_the_function():
    model = _model("resnet")
    net = elasticize(model, _image(SIZE))
    for gene in range(len(net.space.widths)):
        scores = net.importance(gene)
        assert (scores[:-1] >= scores[1:]).all()
    unordered = elasticize(model, _image(SIZE), importance=None)
    assert not all((unordered.importance(g)[:-1] >= unordered.importance(g)[1:]).all()
                   for g in range(len(unordered.space.widths)))
    reversed_order = elasticize(model, _image(SIZE), importance=lambda weights: -weights[0].abs().flatten(1).sum(1))
    reversed_order.importance_fn = None  # score by L1 again: the callable put the smallest first
    assert (reversed_order.importance(0)[:-1] <= reversed_order.importance(0)[1:]).all()


def test_what_it_finds_in_each_model():
    residual = elasticize(_model("resnet"), _image(SIZE)).space
    assert [d.blocks for d in residual.depths] == [("layer1.0", "layer1.1"), ("layer2.1", "layer2.2")]
    assert [d.choices for d in residual.depths] == [(1, 2), (1, 2)]
    assert residual.resolutions == (12, 14, 16)
    dense = elasticize(_model("densenet"), _image(SIZE))
    assert dense.space.resolutions == (SIZE,)  # its flatten feeds a linear: other sizes do not run
    assert [w.label for w in dense.space.widths] == ["stem", "layers.0.2", "layers.1.2", "layers.2.2", "transition"]
    convnext = elasticize(_model("convnext"), _image(SIZE)).space
    assert [(k.module, k.choices) for k in convnext.kernels] == [("blocks.0.dwconv", (3, 5, 7)),
                                                                  ("blocks.1.dwconv", (3, 5, 7))]
    shared = elasticize(_model("shared"), _image(SIZE)).space
    assert len(shared.widths) == 1  # the shared conv reads what it writes: one group
    off = elasticize(_model("convnext"), _image(SIZE), width=None, depth=False, kernel=False).space
    assert (off.widths, off.depths, off.kernels) == ((), (), ())


def test_a_group_read_by_an_unknown_op_stays_fixed_and_says_why():
    net = elasticize(graph_models.UnknownOp(), _image(SIZE))
    assert [w.label for w in net.space.widths] == ["b"]
    fixed = {row[1]: row[4] for row in net.report if row[3] == "fixed"}
    assert "roll" in fixed["a"]


def test_data_dependent_control_flow_fails_in_one_line():
    with pytest.raises(GraphCaptureError, match="control flow") as caught:
        elasticize(graph_models.DataDependent(), _image(SIZE))
    assert "\n" not in str(caught.value)


def test_bad_inputs_are_refused():
    model = _model("shared")
    with pytest.raises(ConfigError, match="batch dimension"):
        elasticize(model, torch.randn(16))
    assert elasticize(model, torch.randn(2, 1, 16, 12)).space.resolutions == (12,)  # not square: traced size only
    with pytest.raises(ConfigError, match="square image"):
        elasticize(model, torch.randn(2, 1, 16, 12), resolutions=(8, 12))
    with pytest.raises(ConfigError, match="include 1.0"):
        elasticize(model, _image(SIZE), width=(0.5, 0.75))
    with pytest.raises(ConfigError, match="importance"):
        elasticize(model, _image(SIZE), importance="l2")


def test_a_space_with_a_source_rebuilds_its_supernet():
    net = elasticize(graph_models.small_resnet(), _image(SIZE), source="tests.supernet.graph_models:small_resnet")
    rebuilt = build_supernet(space_from_config(net.space.to_config()))
    rebuilt.load_state_dict(net.state_dict())
    x = _image(SIZE)
    arch = net.space.sample(2)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x, arch), net.eval()(x, arch))
    with pytest.raises(ConfigError, match="in memory"):
        build_supernet(elasticize(graph_models.small_resnet(), _image(SIZE)).space)


def test_training_steps_reach_every_kept_weight_and_leave_dropped_ones():
    net = elasticize(_model("resnet"), _image(SIZE)).train()
    arch = net.space.min()
    net(_image(arch.resolution, batch=4), arch).square().mean().backward()
    grads = {name: p.grad for name, p in net.named_parameters()}
    assert grads["net.stem.0.weight"].abs().sum() > 0
    assert grads["net.layer1.1.conv1.weight"] is None  # the second block of layer1 is dropped
    kept = net.space.min().widths[0]
    assert grads["net.stem.0.weight"][kept:].abs().sum() == 0  # channels past the kept ones get nothing


def test_cli_explains_and_writes_a_supernet_folder(tmp_path, capsys):
    out = tmp_path / "mine"
    code = main(["elasticize", "tests.supernet.graph_models:small_resnet", "--arg", "width=8",
                 "--input-shape", f"1,{SIZE},{SIZE}", "--explain", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "layer2.0.conv1" in printed and "the model's output" in printed
    import yaml

    config = yaml.safe_load((out / "config.yaml").read_text())
    space = space_from_config(config["supernet"]["space"])
    assert space.source == "tests.supernet.graph_models:small_resnet" and space.source_kwargs == {"width": 8}
    assert {p.name for p in out.iterdir()} == {"config.yaml", "supernet.safetensors", "elasticize.csv"}


def test_cli_refuses_an_untraceable_model_in_one_line(tmp_path, capsys):
    code = main(["elasticize", "tests.supernet.graph_models:DataDependent", "--input-shape", "1,16,16",
                 "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "control flow" in err
    assert not (tmp_path / "x").exists()
    assert main(["elasticize", "tests.supernet.graph_models:nothing", "--input-shape", "1,16,16"]) == 2
    assert "has no 'nothing'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_whole_pipeline_runs_on_an_elasticized_model(tmp_path, capsys):
    """elasticize -> train from the model's weights -> table, measure, fit, search, export, as the quickstart
    runs a built-in family; the exports reload from their folder alone and equal the supernet's subnets."""
    from elasticnas.pipeline import quickstart

    parent = tmp_path / "mine"
    assert main(["elasticize", "tests.supernet.graph_models:small_resnet", "--arg", "width=8", "--input-shape",
                 "1,16,16", "--out", str(parent), "--set", "data.name=digits"]) == 0
    capsys.readouterr()
    fast = ["data.batch_size=256", "train.bn_calibration_images=256", "train.bn_calibration_batch_size=128",
            "train.epochs=1", f"init.source={parent}"]
    summary = quickstart(tmp_path / "run", config=str(parent / "config.yaml"), overrides=fast, subnets=12, trials=3,
                         predicted_evals=400, progress=False, table_repeats=3, table_rounds=1, report_folds=2)
    assert len(summary) == 3
    for folder in summary["export"]:
        report = json.loads((tmp_path / "run" / "exports" / pathlib.Path(folder).name / "report.json").read_text())
        assert report["supernet"] == "graph_smallresnet" and report["reloaded_equals_supernet_subnet"]
        assert max(report["max_relative_difference"].values()) <= 1e-4
    assert summary["test_top1"].between(0, 100).all()


def test_training_from_an_elasticized_run_trains_its_space(tmp_path, capsys):
    parent = tmp_path / "mine"
    assert main(["elasticize", "tests.supernet.graph_models:small_resnet", "--input-shape", "1,16,16",
                 "--out", str(parent), "--set", "data.name=digits"]) == 0
    capsys.readouterr()
    assert main(["train", "--init", str(parent), "--dry-run", "--set", "data.name=digits"]) == 0
    assert "supernet 'graph_smallresnet'" in capsys.readouterr().out
    assert main(["elasticize", "tests.supernet.graph_models:small_resnet", "--input-shape", "1,16,16",
                 "--out", str(parent)]) == 2  # never onto an existing run
    assert "not an empty folder" in capsys.readouterr().err


def test_fine_tuning_distills_from_the_original_model(tmp_path, capsys):
    from safetensors.torch import load_file

    from elasticnas.experiment import load_experiment, train_experiment

    parent = tmp_path / "mine"
    assert main(["elasticize", "tests.supernet.graph_models:small_resnet", "--input-shape", "1,16,16",
                 "--out", str(parent), "--set", "data.name=digits"]) == 0
    capsys.readouterr()
    config = load_experiment(str(parent / "config.yaml"), [
        "data.batch_size=256", "train.bn_calibration_images=256", "train.bn_calibration_batch_size=128",
        "train.epochs=1", "sampler.name=sandwich", "sampler.options={teacher: frozen, num_random: 1}",
        f"init.source={parent}"])
    trainer, _ = train_experiment(config, tmp_path / "run", progress=False)
    original = load_file(parent / "supernet.safetensors")
    teacher = trainer.teacher.state_dict()
    assert torch.equal(teacher["stem.0.weight"], original["net.stem.0.weight"])  # the model as elasticized
    assert not torch.equal(trainer.model.state_dict()["net.stem.0.weight"], original["net.stem.0.weight"])


def test_weights_load_before_elasticizing_and_profile_takes_the_run(tmp_path, capsys):
    from safetensors.torch import save_file

    from elasticnas.hardware import LatencyTable

    model = _model("resnet", seed=5)
    weights = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    out = tmp_path / "run"
    assert main(["elasticize", "tests.supernet.graph_models:small_resnet", "--weights", str(weights),
                 "--input-shape", f"1,{SIZE},{SIZE}", "--out", str(out)]) == 0
    assert "differs from the model by" in capsys.readouterr().out
    from elasticnas.parents import file_sha256
    from elasticnas.runs import load_trained

    run = load_trained(out)
    assert run.space.weights_sha256 == file_sha256(weights)
    x = _image(SIZE)
    with torch.no_grad():
        _close(run.supernet(x, run.space.max()), model(x), 1e-4)  # the given weights, not fresh ones
    tables = tmp_path / "tables"
    assert main(["profile", "--run", str(out), "--out", str(tables), "--resolutions", str(SIZE), "--repeats", "2",
                 "--rounds", "1"]) == 0
    table = LatencyTable.load(tables)
    assert table.space.fingerprint == run.space.fingerprint
    assert table.predict(run.space.max()) > 0 and np.isfinite(table.predict(run.space.max()))
    bad = tmp_path / "bad.safetensors"
    save_file({"nothing": torch.zeros(1)}, str(bad))
    assert main(["elasticize", "tests.supernet.graph_models:small_resnet", "--weights", str(bad),
                 "--input-shape", f"1,{SIZE},{SIZE}"]) == 2
    assert "does not fit the model" in capsys.readouterr().err
