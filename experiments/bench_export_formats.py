"""Seconds to export one subnet: TorchScript + ONNX (the old default) vs torch.export + ONNX (the new).

The min, middle and max subnets of ``tiny_mbv3`` (1 channel, 10 classes, random weights: the
time does not depend on the values), each exported 3 times per format set, median reported.

    python experiments/bench_export_formats.py
"""

from __future__ import annotations

import tempfile
import time
import warnings

import torch

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


def main() -> None:
    warnings.filterwarnings("ignore")  # TorchScript's deprecation, once per export
    torch.set_num_threads(2)
    net = create_supernet("tiny_mbv3", num_classes=10, in_channels=1).eval()
    space = net.space
    for name, arch in (("min", space.min()), ("middle", space.middle()), ("max", space.max())):
        model = net.extract(arch).eval()
        timings = "  ".join(f"{formats}: {seconds_to_export(model, space, arch, formats):.2f} s"
                            for formats in FORMAT_SETS)
        print(f"{name:>6} ({arch.resolution} px)  {timings}")


if __name__ == "__main__":
    main()
