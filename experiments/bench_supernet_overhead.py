"""Forward+backward time of the supernet against its extracted static twin, on CPU.

For the max and the min subnet of each supernet asked for (default ``ofa_mbv3_w10``,
``ofa_resnet50`` and ``autoformer_tiny``, 10 classes), at batch 64 x 32 px and batch 8 x 224 px, the two models are
timed in alternation within one run, in ABBA order so that neither always runs second.
``ratio`` is the ratio of the median step times (1.00 = no slicing overhead);
``paired_ratio`` the median of per-pair ratios. Large activations make single steps spike
(page faults on fresh allocations hit either model at random), so medians over many
repeats are the figures to compare, not single timings.

    python experiments/bench_supernet_overhead.py [--supernets ofa_mbv3_w10,ofa_resnet50,autoformer_tiny] [--repeats 40]
    python experiments/bench_supernet_overhead.py --quick   # tiny_mbv3, batch 8 x 32 px, 2 repeats

Rows of supernets not named keep their earlier figures in the CSV.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import pandas as pd
import torch
from bench_common import add_common_arguments, read_results, results_folder, write_results

from elasticnas.supernet import create_supernet

SETTINGS = ((64, 32), (8, 224))


def _step_time(model, x, arch=None) -> float:
    start = time.perf_counter()
    out = model(x) if arch is None else model(x, arch)
    out.sum().backward()
    elapsed = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return elapsed


def _compare(net, arch, batch: int, res: int, repeats: int) -> dict:
    static = net.extract(arch).train()
    x = torch.randn(batch, 3, res, res)
    for _ in range(3):  # warm-up: allocator, kernels
        _step_time(net, x, arch), _step_time(static, x)
    sup, sta = [], []
    for i in range(repeats):
        if i % 2:
            sta.append(_step_time(static, x))
            sup.append(_step_time(net, x, arch))
        else:
            sup.append(_step_time(net, x, arch))
            sta.append(_step_time(static, x))
    paired = float(pd.Series([a / b for a, b in zip(sup, sta, strict=True)]).median())
    sup_ms, sta_ms = 1e3 * float(pd.Series(sup).median()), 1e3 * float(pd.Series(sta).median())
    which = "max" if arch == dataclasses.replace(net.space.max(), resolution=res) else "min"
    return {"subnet": which, "batch": batch, "resolution": res, "supernet_ms": round(sup_ms, 2),
            "static_ms": round(sta_ms, 2), "ratio": round(sup_ms / sta_ms, 3), "paired_ratio": round(paired, 3)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernets", default="ofa_mbv3_w10,ofa_resnet50,autoformer_tiny")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    settings = SETTINGS
    if args.quick:
        args.supernets, args.repeats, settings = "tiny_mbv3", 2, ((8, 32),)
    out = results_folder(args) / "supernet_overhead.csv"
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.supernets.split(","):
        torch.manual_seed(0)
        net = create_supernet(name, num_classes=10, resolutions=tuple(sorted({r for _, r in settings}))).train()
        for batch, res in settings:
            for which in ("max", "min"):
                arch = dataclasses.replace(getattr(net.space, which)(), resolution=res)
                rows.append({"supernet": name, **_compare(net, arch, batch, res, args.repeats)})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table["threads"] = args.threads
    if out.exists():  # keep the rows of supernets not re-measured this time
        previous = read_results(out)
        table = pd.concat([previous[~previous["supernet"].isin(table["supernet"])], table], ignore_index=True)
    write_results(table, out, quick=args.quick)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
