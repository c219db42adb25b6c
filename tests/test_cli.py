from __future__ import annotations

import warnings

import pytest

from elasticnas.cli import build_parser, main
from elasticnas.hardware import LatencyTable

warnings.filterwarnings("ignore", category=UserWarning)


def test_every_command_has_help_with_an_example(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert "example:" in sub.format_help() and f"elasticnas {name}" in sub.format_help()


def test_profile_builds_a_table(tmp_path):
    out = tmp_path / "table"
    code = main(["profile", "--supernet", "tiny_mbv3", "--in-channels", "1", "--resolutions", "20",
                 "--repeats", "2", "--rounds", "1", "--warmup", "0", "--calibrate", "3", "--out", str(out)])
    assert code == 0
    table = LatencyTable.load(out)
    assert table.resolutions == (20,) and table.calibration["n"] == 3


def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys):
    assert main(["profile", "--supernet", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tiny_mbv3" in err
    with pytest.raises(Exception, match="nope"):
        main(["profile", "--debug", "--supernet", "nope", "--out", str(tmp_path)])
