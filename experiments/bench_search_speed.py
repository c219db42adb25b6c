"""Speed of predictor-driven search on every registered supernet family: 20,000 evaluations.

For each supernet (default: every registered preset at all its resolutions, 1000 classes),
NSGA-II (population 100, seed 0) runs 20,000 evaluations of a one-hot ridge accuracy
predictor and a per-layer latency table. Only the machinery's speed is measured here, so
the table's entries are synthetic (each layer's latency proportional to its MACs, plus a
constant) and the predictor is fitted to log-MACs of 300 random subnets: measuring real
tables for ResNet50 at 25 resolutions would take hours and would not change the speed.
Goal: under 10 s per family.

    python experiments/bench_search_speed.py [--supernets ofa_mbv3_w10,ofa_resnet50]
    python experiments/bench_search_speed.py --quick   # two small spaces, 300 evaluations: seconds

Writes results/search_speed_families.csv.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from bench_common import add_common_arguments, results_folder, write_results
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline

from elasticnas.hardware import LatencyTable, count_all, layer_cost
from elasticnas.hardware.lookup import layer_key
from elasticnas.predictors import ArchEncoder
from elasticnas.search import predictor_objective, run_search, table_latency_objective
from elasticnas.supernet import create_space, list_supernets


def synthetic_table(space) -> LatencyTable:
    layers = space.layers_at(space.resolutions)
    entries = pd.DataFrame({"layer": [layer_key(s) for s in layers],
                            "latency_ms": [0.01 + 1e-7 * layer_cost(s).macs for s in layers]})
    metadata = {"statistic": "latency_ms", "call_overhead_ms": 0.005, "space_fingerprint": space.fingerprint,
                "space_name": space.name, "resolutions": list(space.resolutions), "batch_size": 1,
                "device": "cpu", "runtime": "torch"}
    return LatencyTable(space, entries, metadata)


def time_family(name: str, evals: int) -> dict:
    space = create_space(name, num_classes=1000)
    start = time.perf_counter()
    table = synthetic_table(space)
    archs = space.sample(np.random.default_rng(0), n=300)
    accuracy = make_pipeline(ArchEncoder(space, "onehot"), Ridge()).fit(archs, np.log(count_all(space, archs)["macs"]))
    setup = time.perf_counter() - start
    objectives = [predictor_objective(accuracy), table_latency_objective(table)]
    start = time.perf_counter()
    result = run_search(space, objectives, n_evals=evals, seed=0, pop_size=100, progress=False)
    seconds = time.perf_counter() - start
    return {"supernet": name, "family": space.family, "genes": len(space.genes), "layers": len(space.distinct_layers),
            "predicted_evals": evals, "seconds": round(seconds, 2), "setup_seconds": round(setup, 2),
            "front_size": len(result.front), "goal_seconds": 10.0}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernets", default=",".join(list_supernets()))
    parser.add_argument("--evals", type=int, default=20_000)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.supernets, args.evals = "tiny_mbv3,tiny_vit", 300
    warnings.filterwarnings("ignore")
    rows = []
    for name in args.supernets.split(","):
        rows.append(time_family(name, args.evals))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    write_results(table, results_folder(args) / "search_speed_families.csv", quick=args.quick)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
