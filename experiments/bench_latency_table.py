"""How well per-layer lookup tables predict measured end-to-end latency, on this machine.

For each case (space, resolution, number of subnets) and runtime: build the table (timed;
10 calibration subnets measured among its layers), then measure further random subnets end
to end (3 rounds, each subnet between two readings of the reference workload) and compare,
both ways the table can predict:

- raw: the table's least per-round medians in ms, calibrated in ms, against the subnets'
  least per-round medians in ms;
- normalised: the table's reference units (calibrated in units) converted with the
  reference's time while the subnets were measured, against the subnets' median ratio to the
  reference times that same reference time.

``noise_*`` compare two rounds of the end-to-end measurement itself: the ceiling for any
predictor on this machine. ``--repeat N`` runs the OFA 160 px torch case N times with
``--gap-s`` seconds between runs; ``--inject`` runs it once more with a process burning one
core while the scored subnets are measured (the table is built undisturbed).

    python experiments/bench_latency_table.py [--runtimes torch,onnxruntime] [--repeat 3] [--inject]
    python experiments/bench_latency_table.py --runtimes executorch --cases tiny --subnets 20 --rounds 2
    python experiments/bench_latency_table.py --runtimes onnxruntime --cases tiny_int8 --int8-layer-io 8-bit,float32
    python experiments/bench_latency_table.py --runtimes torch --cases tiny,ofa160 --device cuda
    python experiments/bench_latency_table.py --quick   # tiny on torch: a 3-timing table, 4 subnets, 2 rounds

``tiny_int8`` is the small space searching float32 and int8 (runtimes with an int8 tool only):
its subnets are timed as deployed, and the figures are also given per precision (columns ending
``_8bit``, ``_32bit``). ``--int8-layer-io 8-bit,float32`` builds its table twice, with int8
layers timed on 8-bit input and output (as inside an int8 subnet) and between float32 borders,
and scores both against the same measured subnets.

ExecuTorch lowers every layer and subnet it times (seconds each), hence fewer subnets there.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import torch
from bench_common import add_common_arguments, read_results, results_folder, write_results
from tqdm.auto import tqdm

from elasticnas.hardware import LatencyTable, measure_latency
from elasticnas.hardware.latency import prepare_for_timing
from elasticnas.hardware.table_check import agreement
from elasticnas.supernet import create_space
from elasticnas.supernet.static import build_static

CASES = {  # name -> (space, overrides, resolutions, subnets scored)
    "tiny": ("tiny_mbv3", {"in_channels": 1}, None, 100),
    "ofa160": ("ofa_mbv3_w10", {}, (160,), 30),
    "ofa224": ("ofa_mbv3_w10", {}, (224,), 30),
    "tiny_int8": ("tiny_mbv3", {"in_channels": 1, "precisions": (8, 32)}, None, 100),  # int8 runtimes only
}


def measure_both(space, archs, table, rounds: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-round raw medians (ms) and ratios to the reference, and the reference's median time."""
    clock = table.reference_clock()
    meta = table.metadata
    raw, units = np.zeros((rounds, len(archs))), np.zeros((rounds, len(archs)))
    ready = {}  # each subnet converted once (at most 100 small or 30 OFA subnets are held)
    with tqdm(total=rounds * len(archs), desc=f"measuring ({meta['runtime']})", unit="subnet") as bar:
        for r in range(rounds):
            for i, arch in enumerate(archs):
                shape = (space.in_channels, arch.resolution, arch.resolution)
                if i not in ready:
                    ready[i] = prepare_for_timing(build_static(space, arch), input_shape=shape, device=meta["device"],
                                                  runtime=meta["runtime"], threads=meta["threads"],
                                                  precision=arch.precision)
                result = measure_latency(None, input_shape=shape, device=meta["device"], runtime=meta["runtime"],
                                         threads=meta["threads"], warmup=10, repeats=30, reference=clock,
                                         precision=arch.precision, prepared=ready[i])
                raw[r, i], units[r, i] = result.median_ms, result.ratio
                bar.update()
    return raw, units, clock.typical_ms()


def run_case(case: str, runtime: str, threads: int, burn_while_scoring: bool = False,
             subnets: int | None = None, rounds: int = 3, int8_layer_io: tuple[str, ...] = ("8-bit",),
             device: str = "cpu", build: dict | None = None) -> list[dict]:
    """One row per table built: one, or for a space searching precision one per ``int8_layer_io``,
    all scored against the same end-to-end measurements."""
    name, overrides, resolutions, n = CASES[case]
    n = subnets or n
    space = create_space(name, num_classes=10 if name == "tiny_mbv3" else 1000, **overrides)
    if resolutions is not None:
        space = create_space(name, num_classes=space.num_classes, resolutions=resolutions, **overrides)
    tables, build_s = {}, {}
    for io in int8_layer_io if space.searches_precision else (None,):
        start = time.perf_counter()
        tables[io] = LatencyTable.build(space, device=device, runtime=runtime, threads=threads, progress=False,
                                        **{"calibrate": 10, **(build or {})},
                                        **({"int8_layer_io": io} if io else {}))
        build_s[io] = time.perf_counter() - start
    first = next(iter(tables.values()))
    calibrating = set(first.metadata["calibration_archs"])  # the same subnets for every table (same seed)
    pool = space.sample(np.random.default_rng(1), n=4 * (n + 10))
    archs = [a for a in dict.fromkeys(pool) if a.to_json() not in calibrating][:n]
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if burn_while_scoring else None
    try:
        raw, units, reference_now = measure_both(space, archs, first, rounds=rounds)
    finally:
        if burner is not None:
            burner.kill()
    return [{
        "case": case, "cpu": table.metadata.get("cpu_model"), "device": table.metadata.get("device_name"),
        "rounds": rounds, "space": name,
        "resolutions": "/".join(map(str, table.resolutions)), "runtime": runtime,
        "threads": threads, "subnets": len(archs), "layers": len(table.entries), "build_s": round(build_s[io], 1),
        "burn_while_scoring": burn_while_scoring, "measured_ms_median": float(np.median(raw.min(axis=0))),
        "reference_build_ms": table.metadata["reference_ms"], "reference_scoring_ms": reference_now,
        "drift_repeats_build": table.metadata["reference_repeats_for_drift"],
        **scores(space, table, archs, raw, units, reference_now),
        **({"int8_layer_io": table.metadata["int8_layer_io"]} if io else {}),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    } for io, table in tables.items()]


def scores(space, table, archs, raw, units, reference_now) -> dict:
    """Raw and normalised agreement with the measurements and the measurement's own round-to-round
    agreement; for a space searching precision, also per precision's subnets."""
    raw_ms, normalised_ms = raw.min(axis=0), np.median(units, axis=0) * reference_now
    raw_table, at_speed = table.normalised_as(False), table.at_speed(reference_now)
    groups = {"": np.ones(len(archs), dtype=bool)}
    for bits in space.precisions if space.searches_precision else ():
        groups[f"_{bits}bit"] = np.array([a.precision == bits for a in archs])
    out = {}
    for suffix, mask in groups.items():
        chosen = [a for a, m in zip(archs, mask, strict=True) if m]
        out |= {f"raw_{k}{suffix}": v for k, v in agreement(raw_table.predict(chosen), raw_ms[mask]).items()}
        out |= {f"normalised_{k}{suffix}": v
                for k, v in agreement(at_speed.predict(chosen), normalised_ms[mask]).items()}
        out |= {f"noise_{k}{suffix}": v for k, v in agreement(raw[0][mask], raw[1][mask]).items()}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtimes", default="torch,onnxruntime")
    parser.add_argument("--cases", default="tiny,ofa160,ofa224")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (torch runtime: CUDA-event timing)")
    parser.add_argument("--repeat", type=int, default=0, help="run the ofa160 torch case this many times")
    parser.add_argument("--gap-s", type=float, default=60.0, help="seconds between repeated runs")
    parser.add_argument("--inject", action="store_true", help="also run ofa160 torch with a core burnt while scoring")
    parser.add_argument("--subnets", type=int, default=None, help="subnets scored per case (default: the case's)")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end rounds per subnet (2 or more)")
    parser.add_argument("--int8-layer-io", default="8-bit",
                        help="for tiny_int8: how its int8 layers are timed, one table each (8-bit, float32)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    build = None
    if args.quick:
        args.runtimes, args.cases, args.subnets, args.rounds, args.repeat, args.inject = "torch", "tiny", 4, 2, 0, False
        build = {"repeats": 3, "rounds": 1, "calibrate": 3}
    folder = results_folder(args)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(args.threads)
    repeated = []
    for index in range(args.repeat):
        if index:
            time.sleep(args.gap_s)
        repeated.append({"run": index + 1, **run_case("ofa160", "torch", args.threads)[0]})
        print(pd.DataFrame(repeated[-1:]).round(3).to_string(index=False), flush=True)
    if args.inject:
        repeated.append({"run": "burn", **run_case("ofa160", "torch", args.threads, burn_while_scoring=True)[0]})
    if repeated:
        write_results(pd.DataFrame(repeated).round(4), folder / "latency_table_repeated.csv", quick=args.quick)
        print(pd.DataFrame(repeated).round(3).to_string(index=False), flush=True)
    rows = []
    for case in filter(None, args.cases.split(",")):
        for runtime in args.runtimes.split(","):
            ran = run_case(case, runtime, args.threads, subnets=args.subnets, rounds=args.rounds,
                           int8_layer_io=tuple(args.int8_layer_io.split(",")), device=args.device, build=build)
            rows += ran
            print(pd.DataFrame(ran).round(3).to_string(index=False), flush=True)
    if rows:
        table = pd.DataFrame(rows)
        path = folder / "latency_table.csv"
        if path.exists():  # rows of cases and runtimes not run this time are kept
            kept = read_results(path)
            # rows of other machines and devices are kept beside this one's, and one row per way of
            # timing int8 layers
            key = ["case", "runtime", "cpu", "device", "int8_layer_io"]
            for frame in (table, kept):
                frame["int8_layer_io"] = frame.get("int8_layer_io", pd.Series("", index=frame.index)).fillna("")
                frame["device"] = frame.get("device", frame["cpu"]).fillna(frame["cpu"])  # rows from before the column
            ran = set(zip(*(table[k] for k in key), strict=True))
            kept = kept[[row not in ran for row in zip(*(kept[k] for k in key), strict=True)]]
            table = pd.concat([kept, table], ignore_index=True)
        write_results(table.round(4), path, quick=args.quick)
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
