"""Seconds to export one subnet: TorchScript + ONNX (the old default) vs torch.export + ONNX (the new).

The min, middle and max subnets of ``tiny_mbv3`` (1 channel, 10 classes, random weights: the
time does not depend on the values), each exported 3 times per format set, median reported.

    python experiments/bench_export_formats.py
    python experiments/bench_export_formats.py --quick   # the min subnet once per format set

Writes results/export_formats.csv.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import pandas as pd
import torch
from bench_common import add_common_arguments, results_folder, write_results

from elasticnas.export import export_subnet
from elasticnas.supernet import create_supernet

FORMAT_SETS = ("safetensors,torchscript,onnx", "safetensors,torch_export,onnx")


def seconds_to_export(model, space, arch, formats: str, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            export_subnet(model, space, arch, folder, formats=formats)
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")  # TorchScript's deprecation, once per export
    torch.set_num_threads(2)
    net = create_supernet("tiny_mbv3", num_classes=10, in_channels=1).eval()
    space = net.space
    subnets = {"min": space.min(), "middle": space.middle(), "max": space.max()}
    if args.quick:
        subnets, args.repeats = {"min": space.min()}, 1
    rows = []
    for name, arch in subnets.items():
        model = net.extract(arch).eval()
        for formats in FORMAT_SETS:
            rows.append({"subnet": name, "resolution": arch.resolution, "formats": formats,
                         "seconds": round(seconds_to_export(model, space, arch, formats, args.repeats), 3)})
            print(rows[-1], flush=True)
    path = write_results(pd.DataFrame(rows), results_folder(args) / "export_formats.csv", quick=args.quick)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
