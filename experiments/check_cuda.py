"""Checks of the CUDA paths that CI cannot make (it has no GPU): run where a GPU is lent.

    python experiments/check_cuda.py
    python experiments/check_cuda.py --quick   # tiny_mbv3 only

For every registered supernet, on CUDA:

1. The extracted subnet gives the supernet's output for the min, max and two random subnets.
   With TF32 off, float32 reordering is the only difference, so the CPU conformance test's bound
   holds (1e-5 of the output's scale); with TF32 on (torch's default for convolutions) the
   difference is reported, not judged.
2. Mixed-precision training steps of the max subnet (autocast + GradScaler, as training does):
   the loss is finite, the scaler takes a step within 20 (it skips those whose float16
   gradients overflow, halving its scale), gradients are float32, parameters stay float32.
3. The max subnet timed at batch 1 with CUDA events (what latency tables use on CUDA) and with
   the host clock around a synchronised run: the events time the GPU's work; the host clock
   adds launching it.

Writes ``results/cuda_check.csv`` and exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from bench_common import add_common_arguments, results_folder, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' randomised supernets

from elasticnas.hardware import measure_latency  # noqa: E402
from elasticnas.supernet import list_supernets  # noqa: E402
from tests.conftest import make_supernet  # noqa: E402

FLOAT32_BOUND = 1e-5  # of the output's scale: the CPU conformance test's


def extraction_error(net, arch, x: torch.Tensor, tf32: bool) -> float:
    """Largest difference between the supernet and its extracted subnet, over the output's scale."""
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    with torch.no_grad():
        expected = net(x, arch)
        static = net.extract(arch).eval()
        return float((static(x) - expected).abs().max()) / max(1.0, float(expected.abs().max()))


def amp_steps(net, arch, x: torch.Tensor, limit: int = 20) -> dict:
    """Mixed-precision steps of ``arch`` as training takes them (autocast, GradScaler), until one
    is taken: the scaler starts at 2**16, and a step whose float16 gradients overflow is skipped
    and the scale halved, so the first steps may be skipped, but not all of them."""
    net.train()
    scaler, optimizer = torch.amp.GradScaler("cuda"), torch.optim.SGD(net.parameters(), lr=0.0)
    target = torch.zeros(len(x), dtype=torch.long, device=x.device)
    skipped = 0
    for _ in range(limit):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda"):
            logits = net(x, arch)
        loss = F.cross_entropy(logits.float(), target)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grads = [p.grad for p in net.parameters() if p.grad is not None]
        taken = bool(grads) and all(torch.isfinite(g).all() for g in grads)
        scaler.step(optimizer)
        scaler.update()
        if taken:
            break
        skipped += 1
    net.eval()
    return {"amp_logits_dtype": str(logits.dtype), "amp_loss_finite": bool(torch.isfinite(loss)),
            "amp_steps_skipped": skipped, "amp_step_taken": taken,
            "amp_grads_float32": all(g.dtype == torch.float32 for g in grads),
            "amp_params_float32": all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net.parameters())}


def timings(net, arch) -> dict:
    model = net.extract(arch).eval()
    shape = (net.space.in_channels, arch.resolution, arch.resolution)
    events = measure_latency(model, input_shape=shape, device="cuda", runtime="torch", repeats=30).median_ms
    x = torch.randn(1, *shape, device="cuda")
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        torch.cuda.synchronize()
        start, number = time.perf_counter(), 200
        for _ in range(number):
            model(x)
        torch.cuda.synchronize()
    return {"events_ms": events, "host_clock_ms": 1e3 * (time.perf_counter() - start) / number}


def check(name: str) -> dict:
    net = make_supernet(name).cuda().eval()
    space = net.space
    archs = [space.max(), space.min(), *space.sample(1, n=2)]
    row = {"supernet": name, "device": torch.cuda.get_device_name(), "torch": torch.__version__}
    for tf32 in (False, True):
        errors = []
        for i, arch in enumerate(archs):
            gen = torch.Generator().manual_seed(i)
            x = torch.randn(2, space.in_channels, arch.resolution, arch.resolution, generator=gen).cuda()
            errors.append(extraction_error(net, arch, x, tf32))
        row[f"extract_error_{'tf32' if tf32 else 'float32'}"] = max(errors)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.randn(8, space.in_channels, space.max().resolution, space.max().resolution, device="cuda")
    row |= amp_steps(net, space.max(), x)
    row |= timings(net, space.max())
    row["passed"] = (row["extract_error_float32"] <= FLOAT32_BOUND and row["amp_loss_finite"]
                     and row["amp_step_taken"] and row["amp_grads_float32"] and row["amp_params_float32"])
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check here")
        return 2
    rows = []
    for name in ["tiny_mbv3"] if args.quick else list_supernets():
        try:
            rows.append(check(name))
        except Exception as error:  # a family that fails on CUDA is a result, not the end of the run
            rows.append({"supernet": name, "passed": False, "error": f"{type(error).__name__}: {error}"[:300]})
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    write_results(table, results_folder(args) / "cuda_check.csv", quick=args.quick)
    print(table.to_string(index=False))
    return 0 if table["passed"].all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
