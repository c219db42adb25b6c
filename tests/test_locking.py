"""One writer per run folder: a second writer is refused naming the holder; killed holders do not block."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from elasticnas.cli import main
from elasticnas.core.errors import ElasticNASError
from elasticnas.core.locking import FolderLockedError, exclusive_writer
from elasticnas.core.run_layout import LOCK as LOCK_FILE
from elasticnas.runs import run_space

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="advisory locks need fcntl (POSIX)")

HOLD = """
import sys, time
from elasticnas.core.locking import exclusive_writer
with exclusive_writer(sys.argv[1], "elasticnas search RUN (test holder)"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the write lock of the run folder tmp_path/run until killed."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text("{}\n")  # a run being trained: commands on runs lock it
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield folder, process
    process.kill()
    process.wait()


def test_a_second_writer_is_refused_with_the_holders_pid_and_command(holder, capsys):
    folder, process = holder
    for argv in (["train", "mnist_sandwich", "--out", str(folder)], ["fit", str(folder)],
                 ["search", str(folder)], ["report", str(folder)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {process.pid}" in err and "(test holder)" in err, err
    with pytest.raises(FolderLockedError), exclusive_writer(folder, "in-process"):
        pass


def test_a_killed_holder_does_not_block_the_next_writer(holder):
    folder, process = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    with exclusive_writer(folder, "next") as locked:
        assert (locked / LOCK_FILE).read_text().startswith(f'{{"pid": {os.getpid()}')


def test_readers_are_not_blocked(trained_run):
    with exclusive_writer(trained_run, "writer"):
        assert run_space(trained_run).name  # reading config and space takes no lock


def test_a_writer_that_fails_before_writing_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "new"
    assert main(["train", "no_such_config", "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err and not out.exists()
    assert main(["measure", str(tmp_path / "missing")]) == 2  # a missing run folder is not created
    assert not (tmp_path / "missing").exists()


def test_searches_writing_their_own_folder_do_not_block_on_the_run(run_copy, tmp_path, capsys):
    search = ["search", str(run_copy), "--objectives", "macs,latency", "--predicted-evals", "20"]
    with exclusive_writer(run_copy, "another writer"):
        assert main([*search, "--out", str(tmp_path / "w1")]) == 0  # the run's table exists: only w1 is written
        assert main(search) == 2  # the default folder is inside the run
        assert "another writer" in capsys.readouterr().err
        assert main([*search, "--out", str(tmp_path / "w2"), "--runtime", "onnxruntime"]) == 2  # a new table
    assert not (tmp_path / "w2").exists()


def test_the_lock_file_is_gone_when_the_writer_is_done_and_is_never_followed_through_a_link(tmp_path):
    folder = tmp_path / "run"
    with exclusive_writer(folder, "writer"):
        assert (folder / LOCK_FILE).is_file()
        (folder / "result.txt").write_text("kept")
    assert not (folder / LOCK_FILE).exists() and (folder / "result.txt").exists()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (folder / LOCK_FILE).symlink_to(victim)
    with pytest.raises(ElasticNASError, match="symbolic link"), exclusive_writer(folder, "writer"):
        pass
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("argv", [["report", "{folder}"], ["fit", "{folder}"], ["measure", "{folder}"],
                                  ["export", "{folder}", "--budget-ms", "3", "--out", "{folder}/x"]])
def test_a_command_refusing_a_folder_that_is_not_a_run_writes_nothing_there(tmp_path, capsys, argv):
    folder = tmp_path / "not_a_run"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert main([a.format(folder=folder) for a in argv]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
