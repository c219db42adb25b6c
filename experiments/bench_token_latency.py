"""How well a per-layer table predicts a language model's token latency: prefill and decode.

For ``tiny_gpt`` at one context length, a latency table is built per phase (the prompt's
prefill; one decoding step over a full KV cache) on the torch runtime, then ``--subnets``
held-out random subnets are timed end to end (whole forward passes of extracted models; the
decoding step over a filled cache) in ``--rounds`` rounds, fastest round kept, and compared
with the table's predictions: the share within +-10%, the median ratio, Kendall's tau. The
table is not calibrated on any of them. A decoding step is also timed inside real greedy
generation (``model.generate``: prefill, then one token at a time) to check that the timed
step is what generation costs per token.

    python experiments/bench_token_latency.py [--context 128] [--subnets 20]
    python experiments/bench_token_latency.py --quick   # a small space, 4 subnets: seconds

Writes results/token_latency.csv (one row per subnet and phase) and token_latency_summary.csv.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from bench_common import add_common_arguments, results_folder, write_results
from scipy.stats import kendalltau

from elasticnas.hardware import LatencyTable, count_all, measure_archs
from elasticnas.supernet import create_space


def space_of(args):
    if args.quick:
        return create_space("tiny_gpt", num_classes=256, resolutions=(32,), embed_choices=(64,),
                            depth_choices=(1, 2), head_choices=(1, 2), mlp_choices=(64, 128), head_dim=32)
    return create_space("tiny_gpt", num_classes=256, resolutions=(args.context,))


@torch.no_grad()
def generation_ms_per_token(space, arch, new_tokens: int) -> float:
    """Wall time per generated token of greedy generation after a prompt of ``resolution - new_tokens``."""
    model = space.static_model(arch).eval()
    prompt = torch.randint(0, space.num_classes, (1, arch.resolution - new_tokens),
                           generator=torch.Generator().manual_seed(0))
    model.generate(prompt, 2, temperature=0)  # warm-up
    started = time.perf_counter()
    model.generate(prompt, new_tokens, temperature=0)
    whole = time.perf_counter() - started
    started = time.perf_counter()
    model.generate(prompt, 1, temperature=0)  # the prefill and the first token: what the rest comes after
    return 1000 * (whole - (time.perf_counter() - started)) / (new_tokens - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    add_common_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.subnets, args.repeats, args.rounds = 4, 3, 1
    out = results_folder(args)
    prefill = space_of(args)
    subnets = prefill.sample(np.random.default_rng(1), n=args.subnets)
    rows, summary = [], []
    for phase in ("prefill", "decode"):
        space = prefill.in_phase(phase)
        started = time.perf_counter()
        table = LatencyTable.build(space, repeats=args.repeats, rounds=args.rounds, progress=not args.quick)
        build_s = time.perf_counter() - started
        predicted = table.predict(subnets)
        measured = measure_archs(space, subnets, repeats=args.repeats, rounds=args.rounds, progress=not args.quick)
        costs = count_all(space, subnets)
        for i, arch in enumerate(subnets):
            rows.append({"phase": phase, "arch": arch.to_json(), "macs": int(costs["macs"][i]),
                         "memory_bytes": int(costs["memory_bytes"][i]), "predicted_ms": predicted[i],
                         "measured_ms": measured[i]})
        ratio = predicted / measured
        summary.append({"phase": phase, "context": prefill.resolutions[0], "subnets": len(subnets),
                        "layers_in_table": len(table.entries), "table_build_s": round(build_s, 1),
                        "within_10_percent": float(np.mean(np.abs(ratio - 1) <= 0.1)),
                        "median_ratio": float(np.median(ratio)), "kendall_tau": float(kendalltau(predicted,
                                                                                                  measured)[0])})
    decode_rows = [r for r in rows if r["phase"] == "decode"]
    new_tokens = 4 if args.quick else 32
    for row, arch in zip(decode_rows, subnets, strict=True):
        row["generation_ms_per_token"] = generation_ms_per_token(prefill, arch, new_tokens)
    generation = np.array([r["generation_ms_per_token"] for r in decode_rows])
    step = np.array([r["measured_ms"] for r in decode_rows])
    summary[-1]["generation_over_step_median"] = float(np.median(generation / step))
    write_results(pd.DataFrame(rows), out / "token_latency.csv", quick=args.quick)
    table = pd.DataFrame(summary)
    write_results(table, out / "token_latency_summary.csv", quick=args.quick)
    print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
