"""Search workers sharing one optuna study in a real PostgreSQL server on loopback.

The server is started and stopped here (Debian's ``postgresql`` package; ``.ci/run``
installs it); without it, or without the ``psycopg2`` driver, the tests are skipped, except
where ``ELASTICNAS_REQUIRE_POSTGRES=1`` (CI) makes a skip a failure.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from elasticnas.cli import main
from elasticnas.runs import run_space

optuna = pytest.importorskip("optuna")
SEARCH = [sys.executable, "-m", "elasticnas", "search"]
ARGS = ["--algorithm", "optuna-tpe", "--objectives", "macs,latency", "--heartbeat-s", "1"]


def _postgres_bin() -> Path | None:
    folders = [*os.environ.get("PATH", "").split(os.pathsep), *sorted(glob.glob("/usr/lib/postgresql/*/bin"))[::-1]]
    return next((Path(f) for f in folders if (Path(f) / "initdb").exists() and (Path(f) / "pg_ctl").exists()), None)


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _skip(reason: str):
    if os.environ.get("ELASTICNAS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"ELASTICNAS_REQUIRE_POSTGRES=1, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres_url():
    binaries = _postgres_bin()
    if binaries is None:
        _skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        _skip("no PostgreSQL driver (pip install 'elasticnas[postgres]')")
    if os.geteuid() == 0 and (shutil.which("runuser") is None or not _user_exists("postgres")):
        _skip("running as root, and there is no postgres user to run the server as")
    home = Path(tempfile.mkdtemp(prefix="elasticnas-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = home / "data"
    subprocess.run(_as_server_user([str(binaries / "initdb"), "-D", str(data), "-U", "elasticnas", "--auth=trust",
                                    "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                    str(home / "server.log"), "-w", "start"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg2://elasticnas@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _worker(run, url, study, seed, out, budget) -> subprocess.Popen:
    return subprocess.Popen([*SEARCH, str(run), *ARGS, "--storage", url, "--study", study, "--seed", str(seed),
                             "--predicted-evals", str(budget), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    return stderr


def _trials(url, study, *states):
    loaded = optuna.load_study(study_name=study, storage=url)
    return [t for t in loaded.get_trials(deepcopy=False) if not states or t.state in states]


def _distinct(space, trials) -> set[str]:
    genes = [[t.params[f"g{i}"] for i in range(len(space.encoding_upper_bounds))] for t in trials]
    return {a.to_json() for a in space.decode(genes)}


@pytest.mark.slow
def test_two_workers_fill_one_study_with_every_trial_once(trained_run, postgres_url, tmp_path):
    space, budget = run_space(trained_run), 40
    workers = [_worker(trained_run, postgres_url, "pair", seed, tmp_path / f"w{seed}", budget) for seed in (1, 2)]
    for process in workers:
        err = _finish(process)
        assert "Traceback" not in err and "failed" not in err  # a trial begun too late is no error
    complete = _trials(postgres_url, "pair", optuna.trial.TrialState.COMPLETE)
    skipped = _trials(postgres_url, "pair", optuna.trial.TrialState.FAIL)
    assert len(_trials(postgres_url, "pair")) == len(complete) + len(skipped)  # nothing left running
    assert all("not_evaluated" in t.user_attrs and not t.params for t in skipped)  # begun after the budget
    assert len({t.number for t in complete}) == len(complete)
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both took part
    in_study = _distinct(space, complete)
    assert budget <= len(in_study) <= budget + len(workers)  # each may finish the trial it had begun
    for seed in (1, 2):  # each worker's results cover the whole study: no trial lost
        assert set(pd.read_csv(tmp_path / f"w{seed}" / "archive.csv")["arch"]) == in_study


def _kill_mid_trial(process: subprocess.Popen, url: str, study: str, after: int) -> optuna.trial.FrozenTrial:
    """SIGKILL the worker while it evaluates a subnet (frozen with SIGSTOP to look): a running
    trial with parameters, written after its heartbeat."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()[-2000:]
        if _study_exists(url, study) and len(_trials(url, study, optuna.trial.TrialState.COMPLETE)) >= after:
            process.send_signal(signal.SIGSTOP)
            running = [t for t in _trials(url, study, optuna.trial.TrialState.RUNNING) if t.params]
            if running:
                process.send_signal(signal.SIGKILL)
                process.wait()
                return running[0]
            process.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("the worker was never caught inside a trial")


def _study_exists(url: str, study: str) -> bool:
    return study in [s.study_name for s in optuna.get_all_study_summaries(storage=url)]


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_the_study_usable(trained_run, postgres_url, tmp_path):
    space, budget = run_space(trained_run), 40
    victim = _worker(trained_run, postgres_url, "killed", 1, tmp_path / "victim", budget)
    lost = _kill_mid_trial(victim, postgres_url, "killed", after=10)
    time.sleep(2.5)  # past the grace period of two 1 s heartbeats
    _finish(_worker(trained_run, postgres_url, "killed", 2, tmp_path / "next", budget))
    trials = _trials(postgres_url, "killed")
    states = {t.number: t.state for t in trials}
    assert states[lost.number] == optuna.trial.TrialState.FAIL
    assert optuna.trial.TrialState.RUNNING not in states.values()
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE
    assert retried[0].params.items() >= lost.params.items()  # the killed worker's subnet, evaluated after all
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(_distinct(space, complete)) >= budget
    assert set(pd.read_csv(tmp_path / "next" / "archive.csv")["arch"]) == _distinct(space, complete)


def test_bad_storages_get_one_line(trained_run, tmp_path, capsys):
    common = ["search", str(trained_run), "--objectives", "macs,latency", "--predicted-evals", "10",
              "--out", str(tmp_path / "out")]
    assert main([*common, "--algorithm", "nsga2", "--storage", "sqlite:///x.db"]) == 2
    assert "needs an optuna algorithm" in capsys.readouterr().err
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg2://user:secret@127.0.0.1:{port}/db"
    assert main([*common, "--algorithm", "optuna-tpe", "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "secret" not in err and "user:***@" in err, err
    assert "needs a database driver" in err or "cannot open the study storage" in err
    assert not (tmp_path / "out").exists()
