"""How well per-layer lookup tables predict measured end-to-end latency, on this machine.

For each case (space, resolution, number of subnets) and runtime: build the table (timed),
measure random subnets end to end (3 rounds, the least per-round median, as the table
does for layers), and compare. Calibration is fitted
on 10 further subnets, never on the ones it is scored on. ``noise_tau`` and ``noise_mape``
compare two independent rounds of the end-to-end measurement itself: the ceiling for any
predictor on this machine.

    python experiments/bench_latency_table.py [--runtimes torch,onnxruntime] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau

from elasticnas.hardware import LatencyTable, measure_archs
from elasticnas.supernet import create_space

CASES = (  # name, space overrides, resolutions, subnets scored
    ("tiny_mbv3", {"in_channels": 1}, None, 100),
    ("ofa_mbv3_w10", {}, (160,), 30),
    ("ofa_mbv3_w10", {}, (224,), 30),
)
CALIBRATION_SUBNETS = 10


def _scores(predicted: np.ndarray, measured: np.ndarray, prefix: str) -> dict:
    error = np.abs(predicted - measured) / measured
    return {f"{prefix}_within10": float((error <= 0.10).mean()), f"{prefix}_mape": float(error.mean()),
            f"{prefix}_tau": float(kendalltau(predicted, measured)[0])}


def run_case(name, overrides, resolutions, n, runtime, threads, quick) -> dict:
    space = create_space(name, num_classes=10 if name == "tiny_mbv3" else 1000, **overrides)
    if resolutions is not None:
        space = create_space(name, num_classes=space.num_classes, resolutions=resolutions, **overrides)
    start = time.perf_counter()
    table = LatencyTable.build(space, runtime=runtime, threads=threads, progress=False,
                               repeats=10 if quick else 30, rounds=1 if quick else 3)
    build_s = time.perf_counter() - start
    archs = list(dict.fromkeys(space.sample(np.random.default_rng(1), n=4 * (n + CALIBRATION_SUBNETS))))
    archs = archs[: n + CALIBRATION_SUBNETS]
    rounds = measure_archs(space, archs, runtime=runtime, threads=threads, repeats=10 if quick else 30,
                           rounds=2 if quick else 3, per_round=True, progress=True)
    measured = rounds.min(axis=0)
    calib, scored = slice(0, CALIBRATION_SUBNETS), slice(CALIBRATION_SUBNETS, None)
    raw = table.predict(archs[scored])
    calibrated = table.calibrate(archs[calib], measured[calib]).predict(archs[scored])
    noise = np.abs(rounds[0] - rounds[1]) / rounds[1]
    return {
        "space": name, "resolutions": "/".join(map(str, table.resolutions)), "runtime": runtime, "threads": threads,
        "subnets": n, "layers": len(table.entries), "build_s": round(build_s, 1),
        "measured_ms_median": float(np.median(measured[scored])),
        **_scores(raw, measured[scored], "raw"), **_scores(calibrated, measured[scored], "calibrated"),
        "noise_tau": float(kendalltau(rounds[0], rounds[1])[0]), "noise_mape": float(noise.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtimes", default="torch,onnxruntime")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and rounds (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "latency_table.csv")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(args.threads)
    rows = []
    for name, overrides, resolutions, n in CASES:
        for runtime in args.runtimes.split(","):
            rows.append(run_case(name, overrides, resolutions, n, runtime, args.threads, args.quick))
            print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False), flush=True)
    table = pd.DataFrame(rows).round(3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
