"""Files that are not what they should be: one line naming the file, exit 2, no traceback."""

from __future__ import annotations

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

