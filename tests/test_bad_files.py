"""Files that are not what they should be: one line naming the file, exit 2, no traceback."""

from __future__ import annotations

import json
import os

import pytest

from elasticnas.cli import main
from elasticnas.measure import EVAL_COLUMNS, table_folder
from elasticnas.runs import run_space


def refused(argv: list[str], capsys, names: str) -> str:
    """Run the CLI, expect exit 2 and exactly one stderr line that names ``names``."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert names in err, err
    return err


def test_export_refuses_an_arch_json_that_is_not_json(run_copy, tmp_path, capsys):
    bad = tmp_path / "arch.json"
    bad.write_text("{not json")
    out = tmp_path / "exported"
    err = refused(["export", str(run_copy), "--arch-json", str(bad), "--out", str(out)], capsys, str(bad))
    assert "not JSON" in err and not out.exists()


def test_export_refuses_an_out_that_is_a_file(run_copy, tmp_path, capsys):
    arch = tmp_path / "arch.json"
    arch.write_text(run_space(run_copy).middle().to_json())
    taken = tmp_path / "taken"
    taken.write_text("mine")
    refused(["export", str(run_copy), "--arch-json", str(arch), "--out", str(taken)], capsys, "existing file")
    assert taken.read_text() == "mine"


def test_search_refuses_a_predictor_of_random_bytes(run_copy, capsys):
    for name in ("accuracy.skops", "latency.skops"):
        (run_copy / "predictors").mkdir(exist_ok=True)
        (run_copy / "predictors" / name).write_bytes(os.urandom(3000))
    err = refused(["search", str(run_copy), "--predicted-evals", "50"], capsys, ".skops")
    assert "BadZipFile" in err


@pytest.mark.parametrize("which, content", [("latency_table.json", b'{"garbage": true}'),
                                            ("latency_table.json", b"[1, 2"),
                                            ("latency_table.csv", os.urandom(3000)),
                                            ("latency_table.csv", b"layer,latency_ms\nx,fast\n")])
def test_measure_refuses_a_broken_latency_table(run_copy, capsys, which, content):
    path = table_folder(run_copy, "cpu", "torch") / which
    path.write_bytes(content)
    before = sorted(p.name for p in run_copy.iterdir())
    refused(["measure", str(run_copy), "--n", "3"], capsys, str(path))
    assert sorted(p.name for p in run_copy.iterdir() if p.name != ".elasticnas.lock") == \
        [n for n in before if n != ".elasticnas.lock"]


def test_fit_refuses_evaluations_with_a_broken_row(run_copy, capsys):
    path = run_copy / "evaluations.csv"
    header = ",".join(EVAL_COLUMNS)
    good_arch = run_space(run_copy).min().to_json().replace('"', '""')
    path.write_text(f'{header}\n"{good_arch}",20,1,1,1,1,1.0,not-a-number,2.2,269,0.2\n')
    err = refused(["fit", str(run_copy), "--trials", "2"], capsys, str(path))
    assert "'val_top1' holds 'not-a-number'" in err
    path.write_text(f'{header}\n"{{""resolution"": 20}}",20,1,1,1,1,1.0,50.0,2.2,269,0.2\n')
    refused(["fit", str(run_copy), "--trials", "2"], capsys, str(path))


def test_a_malformed_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("data:\n  name: [unclosed\n")
    err = refused(["train", str(config), "--out", str(tmp_path / "run")], capsys, str(config))
    assert "line 3" in err and not (tmp_path / "run").exists()
    config.write_bytes(b"\xff\xfe\x00garbage")
    refused(["train", str(config), "--out", str(tmp_path / "run")], capsys, str(config))



@pytest.mark.parametrize("override, names", [("train.epochs=[", "not YAML"),
                                             ("supernet.overrides.resolutions=1", "list of numbers"),
                                             ("supernet.overrides.resolutions=[[1]]", "list of numbers"),
                                             ("0\r0=1", "'0\\r0'")])
def test_train_dry_run_refuses_bad_overrides_in_one_line(tmp_path, capsys, override, names):
    refused(["train", "mnist_sandwich", "--dry-run", "--set", "data.name=digits", override], capsys, names)


def test_train_dry_run_prints_the_resolved_config_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "mnist_sandwich", "--dry-run", "--set", "data.name=digits", "train.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 3" in out and "data 'digits'" in out and list(tmp_path.iterdir()) == []


def test_edited_checkpoints_and_exported_weights_are_refused_in_one_line(run_copy, tmp_path, capsys):
    import torch

    from elasticnas.core.errors import ConfigError
    from elasticnas.export import export_subnet, load_subnet
    from elasticnas.runs import load_trained

    space = run_space(run_copy)
    model = load_trained(run_copy).supernet.extract(space.middle()).eval()
    export_subnet(model, space, space.middle(), tmp_path / "exported", formats="safetensors")
    (tmp_path / "exported" / "weights.safetensors").write_bytes(os.urandom(100))
    with pytest.raises(ConfigError, match="weights.safetensors changed after it was exported") as error:
        load_subnet(tmp_path / "exported")
    assert "\n" not in str(error.value)
    meta = json.loads((tmp_path / "exported" / "arch.json").read_text())
    del meta["weights_sha256"]  # as exported before arch.json recorded it: the bytes themselves are refused
    (tmp_path / "exported" / "arch.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="weights.safetensors is not a valid exported weights") as error:
        load_subnet(tmp_path / "exported")
    state = torch.load(run_copy / "checkpoint.pt", weights_only=True)
    state["weights"] = state.pop("model")
    torch.save(state, run_copy / "checkpoint.pt")
    refused(["search", str(run_copy), "--real-evals", "2", "--predicted-evals", "10"], capsys, "checkpoint.pt")
