from __future__ import annotations

import importlib.util
import json
import re
import sys
import warnings

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from elasticnas import load_subnet
from elasticnas.cli import main
from elasticnas.experiment import SupernetConfig
from elasticnas.export import FILES, export_subnet
from elasticnas.hardware import count_all
from elasticnas.pipeline import beyond_measured, quickstart, quickstart_budgets, quickstart_memory_cap
from elasticnas.quality_metric import BITS_PER_BYTE
from elasticnas.runs import load_trained
from elasticnas.supernet import ConfigError
from tests.conftest import image_presets

from .conftest import FAST_RUN

warnings.filterwarnings("ignore", category=UserWarning)


# A noisy latency table is enough to run every stage; the default one (30 timings in 3 rounds
# per layer) takes most of a quickstart's minute here.
# toy sizes of the stages after training: a table of 3 timings per layer, predictors reported on 2 folds
QUICK_TABLE = {"table_repeats": 3, "table_rounds": 1, "report_folds": 2}

EDGE_RUNTIMES = [pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                                            reason=f'not installed: pip install -e ".[{name}]"'))
                 for name in ("openvino", "executorch")]


def test_exported_formats_and_reloaded_model_match_the_supernet(trained_run, tmp_path):
    run = load_trained(trained_run)
    space, supernet = run.space, run.supernet
    arch = space.sample(7)
    out = tmp_path / "export"
    report = export_subnet(supernet.extract(arch), space, arch, out,
                           formats=("safetensors", "torch_export", "onnx", "torchscript"))
    assert set(report["files"]) == {"arch.json", "weights.safetensors", "model.pt2", "model.onnx",
                                    "model.torchscript.pt"}
    x = torch.randn(3, space.in_channels, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = supernet.eval()(x, arch)
        loaded = load_subnet(out)(x)
        scripted = torch.jit.load(str(out / "model.torchscript.pt"))(x)
        program = torch.export.load(out / "model.pt2").module()(x)  # a batch of 3: exported with 2
    onnx = ort.InferenceSession(str(out / "model.onnx")).run(None, {"input": x.numpy()})[0]
    assert (loaded - expected).abs().max() <= 1e-5
    scale = max(1.0, loaded.abs().max().item())
    assert (scripted - loaded).abs().max() <= 1e-4 * scale
    assert (program - loaded).abs().max() <= 1e-4 * scale
    assert np.abs(onnx - loaded.numpy()).max() <= 1e-4 * scale
    meta = json.loads((out / "arch.json").read_text())
    assert space.canonical(meta["arch"]) == arch and meta["space_fingerprint"] == space.fingerprint


@pytest.mark.parametrize("runtime", EDGE_RUNTIMES)
def test_edge_runtime_formats_match_the_torch_model(trained_run, tmp_path, runtime):
    from elasticnas.hardware import edge_runtimes

    run = load_trained(trained_run)
    arch = run.space.sample(5)
    model = run.supernet.extract(arch).eval()
    report = export_subnet(model, run.space, arch, tmp_path, formats=("safetensors", runtime))
    x = torch.randn(1, run.space.in_channels, arch.resolution, arch.resolution,
                    generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(x)
    if runtime == "openvino":
        produced = edge_runtimes.run_openvino_file(tmp_path / "model.xml", x)
    else:
        produced = edge_runtimes.executorch_method((tmp_path / "model.pte").read_bytes()).execute([x])[0]
    scale = max(1.0, expected.abs().max().item())
    assert (produced - expected).abs().max() <= 1e-4 * scale  # float32 reordering by another kernel library
    assert report["max_relative_difference"][runtime] <= 1e-4
    assert set(report["files"]) == {"arch.json", "weights.safetensors", *FILES[runtime]}


def test_export_to_a_runtime_that_is_not_installed_writes_nothing(trained_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "executorch", None)
    run = load_trained(trained_run)
    with pytest.raises(ConfigError, match='pip install -e ".\\[executorch\\]"'):
        export_subnet(run.supernet.extract(run.space.min()), run.space, run.space.min(), tmp_path / "out",
                      formats="safetensors,executorch")
    assert not (tmp_path / "out").exists()


def test_load_subnet_refuses_weights_of_another_architecture(trained_run, tmp_path):
    run = load_trained(trained_run)
    space = run.space
    out = tmp_path / "export"
    export_subnet(run.supernet.extract(space.min()), space, space.min(), out, formats="safetensors")
    meta = json.loads((out / "arch.json").read_text())
    meta["arch"] = space.max().to_dict()
    (out / "arch.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="does not fit"):
        load_subnet(out)
    with pytest.raises(FileNotFoundError, match="arch.json"):
        load_subnet(tmp_path / "nothing")


def test_export_command_writes_a_measured_report(run_copy, tmp_path, capsys):
    space = load_trained(run_copy, weights=False).space
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(space.middle().to_json())
    out = tmp_path / "exported"
    assert main(["export", str(run_copy), "--arch-json", str(arch_file), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert 0 <= report["test_top1"] <= 100 and report["latency_ms_measured"] > 0
    assert report["reloaded_equals_supernet_subnet"] and set(report["files"]) >= {"weights.safetensors", "model.onnx"}
    assert max(report["max_relative_difference"].values()) <= 1e-4
    assert main(["export", str(run_copy), "--budget-ms", "3", "--out", str(out)]) == 2
    assert "elasticnas search" in capsys.readouterr().err
    assert main(["export", str(run_copy), "--arch-json", str(arch_file), "--formats", "onnx", "--out", str(out)]) == 2


def test_finetune_writes_a_checked_export_with_accuracy_before_and_after(run_copy, tmp_path, capsys):
    space = load_trained(run_copy, weights=False).space
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(space.min().to_json())
    exported = run_copy / "exports" / "smallest"
    assert main(["export", str(run_copy), "--arch-json", str(arch_file), "--out", str(exported)]) == 0
    original = json.loads((exported / "report.json").read_text())
    del original["run_folder"]  # as written before reports named their run: found above exports/
    (exported / "report.json").write_text(json.dumps(original))
    assert main(["finetune", str(exported), "--epochs", "1"]) == 0
    out = run_copy / "exports" / "smallest_finetuned"
    report = json.loads((out / "report.json").read_text())
    assert report["test_top1_before"] == pytest.approx(original["test_top1"])
    assert report["test_top1_gain"] == pytest.approx(report["test_top1"] - report["test_top1_before"])
    assert 0 <= report["val_top1"] <= 100 and len(report["finetune"]["history"]) == 1
    assert report["latency_ms_measured"] == original["latency_ms_measured"] and report["macs"] == original["macs"]
    assert set(report["files"]) == set(original["files"]) and not (out / "finetune_checkpoint.pt").exists()
    assert max(report["max_relative_difference"].values()) <= 1e-4
    before, after = load_subnet(exported).state_dict(), load_subnet(out).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
    assert f"-> {report['test_top1']:.2f}%" in capsys.readouterr().out
    assert main(["finetune", str(tmp_path), "--epochs", "1"]) == 2
    assert "not an export folder" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_runs_end_to_end_and_resumes_without_redoing_work(tmp_path, capsys):
    out = tmp_path / "quick"
    kwargs = dict(overrides=FAST_RUN, subnets=12, trials=3, predicted_evals=400, progress=False, finetune_epochs=1,
                  **QUICK_TABLE)
    summary = quickstart(out, **kwargs)
    assert len(summary) == 3 and summary["budget_ms"].is_monotonic_increasing
    measured = pd.read_csv(out / "evaluations.csv")["table_latency_ms"]
    assert summary["budget_ms"].tolist() == quickstart_budgets(pd.read_csv(out / "evaluations.csv"))
    assert all((measured <= budget).sum() >= 2 for budget in summary["budget_ms"])  # measured subnets fit each
    assert summary["test_top1_finetuned"].between(0, 100).all()
    assert (summary["predicted_ms"] <= summary["budget_ms"] + 1e-9).all()
    # kept on the device: within budget, or (the table optimistic beyond 5 tries today) flagged as not
    assert ((summary["measured_ms"] <= summary["budget_ms"]) == summary["within_budget"]).all()
    for folder in summary["export"]:
        assert (pd.io.common.Path(folder) / "report.json").exists()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix in (".pt", ".onnx")}
    assert len([p for p in stamps if "_finetuned" in str(p)]) == 3  # one model.onnx per fine-tuned export
    again = quickstart(out, **kwargs)
    pd.testing.assert_frame_equal(again, summary)
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}  # nothing retrained or re-exported
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pareto.png" in printed and "exports.csv" in printed


def test_quickstart_budgets_sit_on_measured_subnets_by_hand():
    evaluations = pd.DataFrame({"table_latency_ms": [5.0, 1.0, 3.0, 2.0, 4.0, 1.23456, 6.0, 7.0, 8.0, 9.0]})
    # sorted: 1, 1.23456, 2, ..., 9; the subnet at or just above 15%, 40%, 70% of the way through
    # the sorted list (positions 1.35, 3.6, 6.3 -> 2, 4, 7), rounded up to the microsecond
    assert quickstart_budgets(evaluations) == [2.0, 4.0, 7.0]
    assert quickstart_budgets(evaluations, shares=(0.1,)) == [1.235]
    with pytest.raises(ConfigError, match="measured subnets; the run has 1"):
        quickstart_budgets(evaluations.head(1))


def test_the_quickstarts_memory_cap_sits_on_a_measured_subnet():
    from elasticnas.supernet import create_space

    space = create_space("tiny_gpt", num_classes=256)
    archs = list(dict.fromkeys(space.sample(np.random.default_rng(0), n=10)))
    memory = np.sort(count_all(space, archs)["memory_bytes"] / 2**20)
    cap = quickstart_memory_cap(space, pd.DataFrame({"arch": [a.to_json() for a in archs]}))
    # the subnet at or just above 70% of the way through the sorted list, rounded up to 0.01 MiB
    at = memory[int(np.ceil(0.7 * (len(memory) - 1)))]
    assert at <= cap < at + 0.01 and (memory <= cap).sum() >= 0.7 * len(memory) and (memory > cap).any()
    with pytest.raises(ConfigError, match="measured subnets; the run has 1"):
        quickstart_memory_cap(space, pd.DataFrame({"arch": [archs[0].to_json()]}))


@pytest.mark.parametrize(("flag", "value"), [("--table-repeats", "0"), ("--table-rounds", "0"), ("--trials", "0"),
                                           ("--report-folds", "1")])
def test_quickstart_refuses_an_empty_table_or_fit_before_training(tmp_path, capsys, flag, value):
    out = tmp_path / "quick"
    assert main(["quickstart", "--out", str(out), flag, value]) == 2
    assert flag in capsys.readouterr().err and not out.exists()


def test_quickstart_names_an_unknown_config_and_the_known_ones(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["quickstart", "--out", str(out), "--config", "mnist_nonesuch"]) == 2
    err = capsys.readouterr().err
    assert "mnist_nonesuch" in err and "mnist_quickstart.yaml" in err and not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("supernet", [n for n in image_presets("tiny_*") if n != SupernetConfig().name])
def test_quickstart_runs_end_to_end_on_every_small_preset(supernet, tmp_path):
    """Train, profile, measure, fit, search, export on each family's small preset, through the CLI."""
    out = tmp_path / supernet
    summary = quickstart(out, supernet=supernet, overrides=FAST_RUN, subnets=12, trials=3,
                         predicted_evals=400, progress=False, **QUICK_TABLE)
    assert len(summary) == 3 and (summary["predicted_ms"] <= summary["budget_ms"] + 1e-9).all()
    for folder in summary["export"]:
        report = json.loads((pd.io.common.Path(folder) / "report.json").read_text())
        assert report["supernet"] == supernet and report["reloaded_equals_supernet_subnet"]
        assert max(report["max_relative_difference"].values()) <= 1e-4


# ----- budgets kept on measurement ----------------------------------------------------------
def _archive(tmp_path, space):
    archs = [space.max(), space.middle(), space.sample(1), space.min()]
    rows = [{"arch": a.to_json(), "feasible": True, "latency_ms": ms, "accuracy": acc}
            for a, ms, acc in zip(archs, (4.0, 2.5, 2.0, 1.0), (95.0, 90.0, 87.0, 80.0), strict=True)]
    rows.append({"arch": space.sample(0).to_json(), "feasible": True, "latency_ms": 3.0, "accuracy": 85.0})  # dominated
    path = tmp_path / "archive.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path, archs


def test_a_language_models_front_is_best_at_the_fewest_bits_per_byte(tmp_path):
    from elasticnas import budget
    from elasticnas.core.errors import ConfigError
    from elasticnas.supernet import create_space

    space = create_space("tiny_gpt", num_classes=256)
    archs = [space.max(), space.middle(), space.min()]
    rows = [{"arch": a.to_json(), "feasible": True, "latency_ms": ms, "bits_per_byte": bits}
            for a, ms, bits in zip(archs, (3.0, 2.0, 1.0), (2.1, 2.4, 2.9), strict=True)]
    rows.append({"arch": space.sample(0).to_json(), "feasible": True, "latency_ms": 2.5, "bits_per_byte": 2.6})
    path = tmp_path / "archive.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert budget.front_under(path, 3.0, space) == [(archs[0], 3.0, 2.1), (archs[1], 2.0, 2.4), (archs[2], 1.0, 2.9)]
    memory = count_all(space, archs)["memory_bytes"] / 2**20  # weights + KV cache, largest first
    # a memory cap between the middle and the largest subnet leaves the front from the middle one down
    capped = budget.front_under(path, 3.0, space, (memory[0] + memory[1]) / 2)
    assert [p.arch for p in capped] == archs[1:]  # the random one, 2.5 ms, is slower than the middle one
    with pytest.raises(ConfigError, match=re.escape(f"meets 3.0 ms within {memory[2] / 2} MiB")):
        budget.front_under(path, 3.0, space, memory[2] / 2)
    pd.DataFrame(rows).rename(columns={"bits_per_byte": "accuracy"}).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="bits_per_byte"):  # an archive of another metric is not read as this one
        budget.front_under(path, 3.0, space)


def test_the_budget_walks_down_the_front_until_a_subnet_measures_within_it(tmp_path, monkeypatch):
    from elasticnas import budget
    from elasticnas.core.errors import ConfigError
    from elasticnas.supernet import create_space

    space = create_space("tiny_mbv3", num_classes=10, in_channels=1)
    path, (largest, middle, other, smallest) = _archive(tmp_path, space)
    assert [p.arch for p in budget.front_under(path, 3.0, space)] == [middle, other, smallest]  # 3 ms one dominated
    front = budget.front_under(path, 5.0, space)
    assert front[0] == (largest, 4.0, 95.0) and len(front) == 4
    timings = iter([4.4, 1.3])  # the largest measures 10% over its 4.0 ms prediction, and over 4.2 ms
    monkeypatch.setattr(budget, "measure_archs", lambda space, archs, **kw: [next(timings)])
    arch, measured, tried = budget.first_within(space, front, 4.2, device="cpu", runtime="torch")
    assert tried["rank"].tolist() == [0, 1] and arch == middle and measured == 1.3
    # 50% then 80% optimistic: each over-budget timing raises the scale the next prediction must fit
    # under; a reading over the budget and 20% over its prediction is taken twice, the faster kept
    timings = iter([6.0, 6.1, 4.5, 4.6, 3.0])
    monkeypatch.setattr(budget, "measure_archs", lambda space, archs, **kw: [next(timings)])
    arch, measured, tried = budget.first_within(space, front, 4.2, device="cpu", runtime="torch")
    assert tried["rank"].tolist() == [0, 1, 2] and arch == other and measured == 3.0
    assert tried["readings"].tolist() == [2, 2, 1] and tried["measured_ms"].tolist() == [6.0, 4.5, 3.0]
    timings = iter([6.0, 6.0, 8.0, 8.0, 2.4])  # scale 3.2 after the second: only the 1 ms subnet can fit, and does
    monkeypatch.setattr(budget, "measure_archs", lambda space, archs, **kw: [next(timings)])
    arch, _, tried = budget.first_within(space, front, 4.2, device="cpu", runtime="torch")
    assert tried["rank"].tolist() == [0, 1, 3] and arch == smallest
    timings = iter([9.0, 4.1])  # one busy moment: the second reading fits, and the most accurate is kept
    monkeypatch.setattr(budget, "measure_archs", lambda space, archs, **kw: [next(timings)])
    arch, measured, tried = budget.first_within(space, front, 4.2, device="cpu", runtime="torch")
    assert arch == largest and measured == 4.1 and tried["readings"].tolist() == [2]
    timings = iter([20.0, 20.0, 3.9])  # 5x over: nothing left fits at that ratio, so the fastest is tried
    monkeypatch.setattr(budget, "measure_archs", lambda space, archs, **kw: [next(timings)])
    arch, measured, tried = budget.first_within(space, front, 4.2, device="cpu", runtime="torch")
    assert tried["rank"].tolist() == [0, 3] and arch == smallest and measured == 3.9
    timings = iter([6.0, 6.0, 4.5, 4.5])
    monkeypatch.setattr(budget, "measure_archs", lambda space, archs, **kw: [next(timings)])
    arch, measured, tried = budget.first_within(space, front, 4.2, device="cpu", runtime="torch", max_tries=4,
                                                strict=False)
    assert arch == middle and measured == 4.5 and not tried["within_budget"].any()  # the fastest tried
    monkeypatch.setattr(budget, "measure_archs", lambda space, archs, **kw: [9.0])
    with pytest.raises(ConfigError, match="no subnet measured within 5.0 ms .* the fastest at 9 ms"):
        budget.first_within(space, front, 5.0, device="cpu", runtime="torch", max_tries=3)
    with pytest.raises(ConfigError, match="no subnet"):
        budget.front_under(path, 0.5, space)


def test_exports_predicted_above_every_measured_subnet_are_flagged():
    measured = pd.Series([96.4, 97.5, 98.27])
    assert beyond_measured(pd.Series([98.0, 98.27]), measured) is None  # at the best measured: not beyond
    warning = beyond_measured(pd.Series([98.33, 97.9, 99.38]), measured)
    assert warning.startswith("2 of 3 exports") and "up to 99.38%" in warning and "best measured, 98.27%" in warning
    assert warning.endswith("judge them by their measured test_top1")
    old_journal = pd.DataFrame({"val_loss": [2.0, 1.5]})  # a language model's, from before bits per byte
    assert np.allclose(BITS_PER_BYTE.of_row(old_journal), [2.0 / np.log(2), 1.5 / np.log(2)])
    assert BITS_PER_BYTE.of_row({"val_bits_per_byte": 2.5, "val_loss": 9.0}) == 2.5
    bits = pd.Series([3.1, 2.9])  # lower is better: predicted below every measured subnet is beyond
    assert beyond_measured(pd.Series([2.9, 3.5]), bits, BITS_PER_BYTE) is None
    warning = beyond_measured(pd.Series([2.95, 2.7]), bits, BITS_PER_BYTE)
    assert warning.startswith("1 of 2 exports") and "below every measured" in warning
    assert "up to 2.700 bits per byte against the best measured, 2.900 bits per byte" in warning
    assert warning.endswith("judge them by their measured test_bits_per_byte")


def _measured_by_hand(run_folder, space, table, rows):
    """evaluations.csv holding ``rows`` of (arch, val_top1), as `elasticnas measure` writes it."""
    from elasticnas.measure import EVAL_COLUMNS

    frame = pd.DataFrame([{"arch": a.to_json(), "resolution": a.resolution, "macs": 1, "params": 1, "size_bytes": 1,
                           "peak_activation_bytes": 1, "table_latency_ms": float(table.predict([a])[0]),
                           "val_top1": top1, "val_loss": 0.1, "val_images": 100, "eval_seconds": 0.1}
                          for a, top1 in rows], columns=list(EVAL_COLUMNS))
    frame.to_csv(run_folder / "evaluations.csv", index=False)


def test_a_budget_export_is_chosen_on_measured_validation_accuracy(run_copy, tmp_path, monkeypatch):
    from elasticnas import budget
    from elasticnas.accuracy_check import CHECKS
    from elasticnas.measure import latency_table_for, read_evaluations
    from elasticnas.pipeline import export_within_budget

    run = load_trained(run_copy)
    space = run.space
    table = latency_table_for(run_copy, space, check_speed=True)
    # by the table (a 2-timing one: its order need not be the MACs order): the fastest, three more, the slowest
    archs = sorted(dict.fromkeys([space.min(), space.max(), *space.sample(7, n=40)]),
                   key=lambda a: float(table.predict([a])[0]))
    fast, inside, slow = archs[0], archs[1:4], archs[-1]
    budget_ms = 0.999 * float(table.predict([slow])[0])
    # what the search predicted: each of the three above the next, and faster ones less accurate
    archive = pd.DataFrame({"arch": [a.to_json() for a in inside], "feasible": True,
                            "latency_ms": sorted(table.predict(inside), reverse=True), "accuracy": [99.0, 98.0, 97.0]})
    search = tmp_path / "search"
    search.mkdir()
    archive.to_csv(search / "archive.csv", index=False)
    # measured before: the fastest subnet scores best (a made-up 98.5%, below the 99% predicted above),
    # the slowest too, but over the budget
    _measured_by_hand(run_copy, space, table, [(fast, 98.5), (slow, 98.5)])
    monkeypatch.setattr(budget, "measure_archs", lambda space, archs, **kw: [budget_ms / 2])
    kwargs = dict(search_folder=search, formats=("safetensors",))

    report = export_within_budget(run_copy, budget_ms, tmp_path / "checked", check_top_k=2, **kwargs)
    assert report["arch"] == fast.to_dict() and report["chosen_from"] == "measured"
    assert report["val_top1"] == 98.5 and report["candidates"] == 3 and report["check_top_k"] == 2
    assert report["chosen_on"] == "measured validation top-1" and report["best_measured_quality"] == 98.5
    candidates = pd.read_csv(tmp_path / "checked" / "candidates.csv")
    assert candidates["source"].tolist()[0] == "measured" and slow.to_json() not in set(candidates["arch"])
    assert sorted(candidates["source"][1:]) == ["searched 0", "searched 1"]
    assert candidates["val_top1"].is_monotonic_decreasing
    checks = read_evaluations(run_copy, CHECKS)
    assert checks["arch"].tolist() == [a.to_json() for a in inside[:2]] and len(read_evaluations(run_copy)) == 2
    measured = dict(zip(checks["arch"], checks["val_top1"], strict=True))
    assert candidates.set_index("arch")["val_top1"][inside[0].to_json()] == measured[inside[0].to_json()]

    report = export_within_budget(run_copy, budget_ms, tmp_path / "three", check_top_k=3, **kwargs)
    again = read_evaluations(run_copy, CHECKS)
    assert len(again) == 3 and again["val_top1"][:2].tolist() == checks["val_top1"].tolist()  # none measured twice
    report = export_within_budget(run_copy, budget_ms, tmp_path / "predicted", check_top_k=0, **kwargs)
    assert report["arch"] == inside[0].to_dict() and report["chosen_on"] == "prediction" and report["rank"] == 0
    # within the measured range the prediction stands, and nothing more is measured
    _measured_by_hand(run_copy, space, table, [(fast, 99.5), (slow, 98.5)])
    report = export_within_budget(run_copy, budget_ms, tmp_path / "inside", check_top_k=5, **kwargs)
    assert report["arch"] == inside[0].to_dict() and report["chosen_on"] == "prediction"
    assert len(read_evaluations(run_copy, CHECKS)) == 3 and not (tmp_path / "inside" / "candidates.csv").exists()
    with pytest.raises(ConfigError, match="--check-top-k .* but got -1"):
        export_within_budget(run_copy, budget_ms, tmp_path / "bad", check_top_k=-1, **kwargs)
    assert not (tmp_path / "bad").exists()


def test_quickstart_refuses_a_negative_accuracy_check_before_training(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["quickstart", "--out", str(out), "--check-top-k", "-1"]) == 2
    assert "--check-top-k" in capsys.readouterr().err and not out.exists()
