"""Exports appear whole or not at all, never merge two subnets, and find their run after a move."""

from __future__ import annotations

import json
import shutil
import sys
import time

import pytest

from elasticnas.cli import main
from elasticnas.runs import run_space


def export(run, arch, out, capsys, *extra: str) -> int:
    arch_file = run.parent / f"{out.name}.arch.json"
    arch_file.write_text(arch.to_json())
    code = main(["export", str(run), "--arch-json", str(arch_file), "--out", str(out), *extra])
    capsys.readouterr()
    return code


def test_exporting_onto_another_export_replaces_it_whole(run_copy, capsys):
    space, out = run_space(run_copy), run_copy / "exports" / "chosen"
    assert export(run_copy, space.min(), out, capsys, "--formats", "safetensors,onnx") == 0
    assert (out / "model.onnx").is_file()
    assert export(run_copy, space.max(), out, capsys, "--formats", "safetensors") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["arch"] == space.max().to_dict()
    assert sorted(p.name for p in out.iterdir()) == sorted([*report["files"], "report.json"])  # no old model.onnx
    assert not any(p.name.startswith(".") for p in out.parent.iterdir())  # no staging left behind


def test_an_export_killed_midway_leaves_the_previous_export_whole(run_copy, capsys, monkeypatch):
    import elasticnas.pipeline as pipeline

    space, out = run_space(run_copy), run_copy / "exports" / "chosen"
    assert export(run_copy, space.min(), out, capsys, "--formats", "safetensors") == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def killed(*args, **kwargs):  # after arch.json and the weights are written, before the report
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "deployed_accuracy", killed)
    assert export(run_copy, space.max(), out, capsys, "--formats", "safetensors") == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["chosen"]
    fresh = run_copy / "exports" / "fresh"
    assert export(run_copy, space.max(), fresh, capsys, "--formats", "safetensors") == 130
    assert not fresh.exists()


@pytest.mark.parametrize("where", ["run", "parent", "user_folder"])
def test_export_refuses_an_out_that_is_the_run_or_holds_it_or_holds_other_files(run_copy, capsys, where):
    out = {"run": run_copy, "parent": run_copy.parent, "user_folder": run_copy.parent / "mine"}[where]
    out.mkdir(exist_ok=True)
    (out / "notes.txt").write_text("mine")
    arch_file = run_copy.parent / "arch.json"
    arch_file.write_text(run_space(run_copy).min().to_json())
    before = sorted(p.name for p in out.iterdir())
    assert main(["export", str(run_copy), "--arch-json", str(arch_file), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and ("holds it" in err or "not a export" in err or "already holds" in err)
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_runtime_whose_extra_is_missing_is_refused_before_any_work(run_copy, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    started = time.perf_counter()
    out = run_copy / "exports" / "ov"
    assert main(["export", str(run_copy), "--budget-ms", "3", "--runtime", "openvino", "--out", str(out)]) == 2
    assert 'pip install -e ".[openvino]"' in capsys.readouterr().err
    assert time.perf_counter() - started < 5  # refused before the run is even loaded
    assert not out.exists() and not (run_copy / "tables" / "cpu_openvino").exists()


@pytest.mark.parametrize("device", ["../../x", "/tmp/abs", "tpu", "cpu/../.."])
def test_a_device_that_would_leave_the_run_is_refused_before_anything_is_made(run_copy, tmp_path, capsys, device):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["measure", str(run_copy), "--n", "2", "--device", device]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown device" in err, err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_finetune_finds_its_run_after_both_are_moved_and_refuses_another_run(run_copy, tmp_path, capsys):
    space = run_space(run_copy)
    exported = run_copy / "exports" / "smallest"
    assert export(run_copy, space.min(), exported, capsys, "--formats", "safetensors") == 0
    assert json.loads((exported / "report.json").read_text())["run_folder"] == "../.."
    moved = shutil.move(str(run_copy), str(tmp_path / "moved"))
    shutil.copytree(moved, run_copy)  # the old place now holds another run: retrained below
    (run_copy / "checkpoint.pt").write_bytes((run_copy / "checkpoint.pt").read_bytes() + b"\0")
    moved_export = tmp_path / "moved" / "exports" / "smallest"
    assert main(["finetune", str(moved_export), "--epochs", "1", "--out", str(tmp_path / "tuned")]) == 0
    tuned = json.loads((tmp_path / "tuned" / "report.json").read_text())
    assert (tmp_path / "tuned" / tuned["run_folder"]).resolve() == (tmp_path / "moved").resolve()
    capsys.readouterr()
    assert main(["finetune", str(moved_export), "--epochs", "1", "--run", str(run_copy),
                 "--out", str(tmp_path / "other")]) == 2
    assert "is not the run" in capsys.readouterr().err and not (tmp_path / "other").exists()


def test_an_export_report_records_the_sha256_of_every_file_it_lists(run_copy, capsys):
    from elasticnas.core.checksums import sha256_file

    out = run_copy / "exports" / "chosen"
    assert export(run_copy, run_space(run_copy).middle(), out, capsys, "--formats", "safetensors,onnx") == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["sha256"]) == set(report["files"])
    assert all(sha256_file(out / name) == digest for name, digest in report["sha256"].items())
    onnx = bytearray((out / "model.onnx").read_bytes())
    onnx[-1] ^= 0x01
    (out / "model.onnx").write_bytes(bytes(onnx))
    capsys.readouterr()
    assert main(["finetune", str(out), "--epochs", "1"]) == 2  # it re-exports the formats it finds: all checked
    err = capsys.readouterr().err
    assert "model.onnx changed after it was written" in err and not (out.parent / "chosen_finetuned").exists()


def test_train_resumes_from_the_run_folder_alone_and_names_a_changed_setting(run_copy, capsys):
    recorded = (run_copy / "config.yaml").read_text()
    assert main(["train", "--out", str(run_copy), "--resume"]) == 0  # config and overrides from the folder
    assert main(["train", "--out", str(run_copy), "--resume", "--set", "train.epochs=1"]) == 0  # restated: same
    capsys.readouterr()
    assert main(["train", "--out", str(run_copy), "--resume", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train.epochs" in err and "data.name" not in err, err
    assert (run_copy / "config.yaml").read_text() == recorded


def test_report_refusing_a_truncated_export_report_redraws_nothing(run_copy, capsys):
    assert main(["report", str(run_copy)]) == 0
    drawn = {p: p.stat().st_mtime_ns for p in run_copy.rglob("*.png")}
    assert drawn
    broken = run_copy / "exports" / "cut" / "report.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"test_top1": 9')
    capsys.readouterr()
    assert main(["report", str(run_copy)]) == 2
    assert "report.json" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in run_copy.rglob("*.png")} == drawn
    assert not (run_copy / ".elasticnas.lock").exists()


def test_a_predictor_file_with_one_changed_byte_is_refused(tmp_path):
    import numpy as np
    from sklearn.pipeline import make_pipeline

    from elasticnas.core.errors import ConfigError
    from elasticnas.predictors import ArchEncoder, RidgePredictor, load_predictor, save_predictor
    from elasticnas.supernet import create_space

    space = create_space("tiny_mbv3", num_classes=10, resolutions=(20,))
    archs = space.sample(np.random.default_rng(0), n=30)
    model = make_pipeline(ArchEncoder(space, "ordinal"), RidgePredictor()).fit(archs, np.linspace(80, 95, 30))
    path = save_predictor(model, tmp_path / "accuracy.skops", space=space, target="val_top1")
    good = path.read_bytes()
    for position in range(0, len(good), max(1, len(good) // 25)):  # skops is a zip: every member has a CRC-32
        spoiled = bytearray(good)
        spoiled[position] ^= 0x01
        path.write_bytes(bytes(spoiled))
        with pytest.raises((ConfigError, FileNotFoundError)):
            load_predictor(path, space)


def test_a_refused_profile_check_leaves_the_table_folder_as_it_was(trained_run, tmp_path, capsys):
    from elasticnas.measure import table_folder

    folder = shutil.copytree(table_folder(trained_run, "cpu", "torch"), tmp_path / "table")
    before = sorted(p.name for p in folder.iterdir())
    assert main(["profile", "--out", str(folder), "--check", "-1"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert sorted(p.name for p in folder.iterdir()) == before  # no lock file left behind


def test_an_empty_run_config_is_refused_in_one_line(run_copy, capsys):
    (run_copy / "config.yaml").write_text("")
    assert main(["measure", str(run_copy), "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "config.yaml is empty" in err, err


def test_measure_never_appends_through_a_symlinked_journal(run_copy, tmp_path, capsys):
    from elasticnas.measure import EVAL_COLUMNS

    outside = tmp_path / "outside.csv"
    precious = ",".join(EVAL_COLUMNS) + "\n"  # a journal's header: read, then appended to
    outside.write_text(precious)
    (run_copy / "evaluations.csv").unlink(missing_ok=True)
    (run_copy / "evaluations.csv").symlink_to(outside)
    assert main(["measure", str(run_copy), "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "symbolic link" in err, err
    assert outside.read_text() == precious
    outside.write_text("precious\n")  # not a journal at all: refused as such, in one line
    assert main(["measure", str(run_copy), "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lacks the columns" in err, err
