"""Would per-stage precision pay off? Each stage of a subnet at int8 alone, against float32 and all-int8.

The precision gene is per subnet: every layer float32, or every layer int8. A per-stage gene
only pays off where some stage runs faster at int8 than at float32 inside the whole subnet,
quantize/dequantize at its borders included. This benchmark measures exactly that, with
ONNX Runtime's static quantizer (the precision benchmark's runtime): for ``--subnets``
``tiny_mbv3`` subnets spread over MACs, the float32 subnet, the subnet with every layer int8,
and, for each stage, the subnet with only that stage's layers int8 (ranges from seeded random
inputs; they set scales, not speed). A stage is a run of consecutive layers of one kind and
width: the stem, each stage of blocks, the head. Every variant is timed end to end on the same
input, interleaved, in ``--rounds`` rounds; each keeps its least per-round median.

    python experiments/bench_stage_precision.py [--subnets 8] [--rounds 3] [--threads 2]
    python experiments/bench_stage_precision.py --quick   # 2 subnets, 1 round of 3 timings

Writes results/stage_precision.csv (one row per subnet and variant: time and ratio to float32)
and results/stage_precision_summary.csv (per variant: median ratio, and in how many subnets it
ran faster than float32); ``--tag T`` adds ``_T`` to both names.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import pandas as pd
import torch
from bench_common import add_common_arguments, results_folder, write_results
from bench_precision import file_tag
from tqdm import tqdm

from elasticnas.hardware import count_all
from elasticnas.hardware.latency import measure_latency
from elasticnas.hardware.quantize import quantize_onnx, random_calibration
from elasticnas.hardware.runtime_parts import Prepared, export_onnx_bytes, onnxruntime_session
from elasticnas.runs import spread_by_macs
from elasticnas.supernet.catalogue import create_space
from elasticnas.supernet.static import build_static


def stages(layers) -> dict[str, list[int]]:
    """Layer indices per stage: the stem (before the first block), runs of blocks of one output
    width, and the head (after the last block). Blocks are the kind of layer the subnet repeats most."""
    kinds = [type(spec).__name__ for spec in layers]
    block = Counter(kinds).most_common(1)[0][0]
    blocks = [i for i, kind in enumerate(kinds) if kind == block]
    out: dict[str, list[int]] = {"stem": list(range(blocks[0]))}
    for i in blocks:
        out.setdefault(f"blocks_{layers[i].out_channels}", []).append(i)
    out["head"] = list(range(blocks[-1] + 1, len(layers)))
    return {name: indices for name, indices in out.items() if indices}


def variants(space, arch, threads: int) -> dict[str, Prepared]:
    """float32, all int8, and one stage at a time int8: each an ONNX Runtime session on one image."""
    torch.manual_seed(0)
    model = build_static(space, arch).eval()
    example = torch.randn(1, space.in_channels, arch.resolution, arch.resolution)
    onnx_bytes = export_onnx_bytes(model, example)
    calibration = random_calibration(example)
    graphs = {"float32": onnx_bytes, "int8": quantize_onnx(onnx_bytes, calibration)}
    for name, indices in stages(space.layers(arch)).items():
        graphs[f"int8_{name}"] = quantize_onnx(onnx_bytes, calibration, only_layers=indices)
    feed = {"input": example.numpy()}
    sessions = {name: onnxruntime_session(graph, torch.device("cpu"), threads) for name, graph in graphs.items()}
    return {name: Prepared(lambda s=session: s.run(None, feed), lambda: None) for name, session in sessions.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subnets", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", type=file_tag,
                        help="appended to the result files' names, e.g. another CPU's")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.subnets, args.rounds, args.repeats = 2, 1, 3
    suffix = f"_{args.tag}" if args.tag else ""
    if min(args.subnets, args.rounds, args.repeats, args.threads) < 1:
        parser.error("--subnets, --rounds, --repeats and --threads must each be at least 1")
    space = create_space("tiny_mbv3", num_classes=10, in_channels=1)
    archs = spread_by_macs(space, args.subnets, seed=args.seed, pool_size=2000)
    prepared = [variants(space, arch, args.threads) for arch in tqdm(archs, desc="quantizing")]
    times: dict[tuple[int, str], float] = {}
    for _ in tqdm(range(args.rounds), desc="rounds"):
        for i, (arch, ready) in enumerate(zip(archs, prepared, strict=True)):
            for name, runner in ready.items():
                result = measure_latency(None, input_shape=(space.in_channels, arch.resolution, arch.resolution),
                                         runtime="onnxruntime", threads=args.threads, repeats=args.repeats,
                                         prepared=runner)
                times[i, name] = min(times.get((i, name), np.inf), result.median_ms)
    macs = count_all(space, archs)["macs"]
    rows = [{"subnet": i, "macs": int(macs[i]), "resolution": archs[i].resolution, "variant": name, "ms": ms,
             "ratio_to_float32": ms / times[i, "float32"], "arch": archs[i].to_json()}
            for (i, name), ms in times.items()]
    detail = pd.DataFrame(rows)
    summary = (detail[detail["variant"] != "float32"].groupby("variant", sort=False)["ratio_to_float32"]
               .agg(subnets="count", median_ratio="median", best_ratio="min", worst_ratio="max",
                    faster_than_float32=lambda r: int((r < 1).sum())).reset_index().round(3))
    folder = results_folder(args)
    write_results(detail.round(5), folder / f"stage_precision{suffix}.csv", quick=args.quick)
    write_results(summary, folder / f"stage_precision{suffix}_summary.csv", quick=args.quick)
    print(summary.to_string(index=False))


if __name__ == "__main__":
    main()
