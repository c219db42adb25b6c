"""How many spoiled inputs the project was given, and what it did with each.

Runs the fuzz suite (tests/test_fuzz.py) under its thorough profile: fresh random inputs,
about 150 per file reader and 60 per command. Every input is tallied by file kind, how it was
spoiled (random bytes, truncated, one byte changed, a field of another type or removed, random
architecture dicts, random ``--set`` overrides) and the outcome: "accepted" (read, or the
command exited 0), "refused" (one line, exit 2, nothing written). A traceback, a second line,
a new file after a refusal or a hang fails the suite, so the counts come only from a clean run.

    python experiments/bench_fuzz.py [--profile thorough]
    python experiments/bench_fuzz.py --quick   # the tests that need no trained run, quick profile: seconds

Writes results/fuzz.csv (one row per kind and outcome) and prints the table for the README.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from bench_common import add_common_arguments, results_folder, write_results

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="thorough", choices=["quick", "thorough"])
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    # quick: only the tests that need no trained run (the others share one, trained first)
    selection = ["-k", "random_device_names or random_storage_urls or dry_run"] if args.quick else []
    if args.quick:
        args.profile = "quick"
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "fuzz_log.csv"
        env = {**os.environ, "ELASTICNAS_FUZZ_PROFILE": args.profile, "ELASTICNAS_FUZZ_LOG": str(log)}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py",
                               *selection], cwd=ROOT, env=env)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"the fuzz suite failed (exit {done.returncode}); fix what it found before counting")
        rows = pd.read_csv(log, names=["kind", "how", "outcome"])
    table = (rows.groupby(["kind", "outcome"]).size().unstack(fill_value=0)
             .reindex(columns=["accepted", "refused"], fill_value=0))
    table["inputs"] = table.sum(axis=1)
    table = table[["inputs", "accepted", "refused"]].sort_values("inputs", ascending=False)
    out = write_results(table, results_folder(args) / "fuzz.csv", quick=args.quick, index=True)
    print(f"{len(rows)} inputs in {seconds:.0f} s ({args.profile} profile); by how they were spoiled:")
    print(rows.groupby("how").size().to_string())
    print(table.to_markdown() if _has_tabulate() else table.to_string())
    print(f"written: {out}")


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
