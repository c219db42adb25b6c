"""Every benchmark script in experiments/ runs its ``--quick`` mode, so that none rots.

Each runs as a user runs it (``python experiments/NAME.py --quick --results DIR``) and must
exit 0 and write at least one result CSV whose header gives its provenance (commit, CPU,
cores, torch, date) and marks it quick. The figures of a quick run mean nothing and are not
checked here; the scripts' full runs feed docs/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from elasticnas.ofa_trace import reference_trace_path

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SCRIPTS = sorted(path.name for path in EXPERIMENTS.glob("*.py") if 'if __name__ == "__main__":' in path.read_text())
PROVENANCE = ("commit", "cpu", "cores", "torch", "python", "date", "quick")
# Each quick run starts a Python process (torch imported again) and most train, time or search for
# a while: all but the cheapest are in the slow tier (make test-slow, which CI runs).
FAST = {"bench_search_speed.py"}


def header(path: Path) -> dict[str, str]:
    lines = [line[2:] for line in path.read_text().splitlines() if line.startswith("# ")]
    return dict(line.split(": ", 1) for line in lines)


def test_every_script_is_covered():
    assert {"bench_search_speed.py", "bench_own_model.py", "check_cuda.py"} <= set(SCRIPTS)
    assert set(SCRIPTS) >= FAST, f"FAST names scripts that are gone: {sorted(FAST - set(SCRIPTS))}"


@pytest.mark.parametrize("script", [name if name in FAST else pytest.param(name, marks=pytest.mark.slow)
                                    for name in SCRIPTS])
def test_quick_mode_runs_and_records_its_provenance(script, tmp_path):
    if script == "check_cuda.py" and not torch.cuda.is_available():
        pytest.skip("check_cuda.py checks the CUDA paths: no CUDA device here")
    if script == "bench_search.py" and reference_trace_path() is None:
        pytest.skip("bench_search.py searches the OFA reference trace: ../shared/refdata is absent")
    done = subprocess.run([sys.executable, str(EXPERIMENTS / script), "--quick", "--results", str(tmp_path)],
                          cwd=EXPERIMENTS.parent, capture_output=True, text=True)
    assert done.returncode == 0, f"{script} --quick failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    written = sorted(tmp_path.glob("*.csv"))
    assert written, f"{script} --quick wrote no CSV into --results"
    for path in written:
        given = header(path)
        assert set(PROVENANCE) <= set(given), f"{path.name} lacks {sorted(set(PROVENANCE) - set(given))}"
        assert given["quick"] == "True" and given["cores"].isdigit() and given["commit"]


def test_rewritten_results_alone_do_not_mark_the_commit_changed(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    from bench_common import changes_beyond_results

    rerun = " M experiments/results/lm_routes.csv\n M experiments/results/lm_routes_summary.csv\n"
    assert not changes_beyond_results(rerun)
    assert not changes_beyond_results("")
    assert changes_beyond_results(" M experiments/results/a.csv\n M supernet/samplers.py\n")
    assert changes_beyond_results('R  experiments/results/a.csv -> "docs/a b.md"\n')
