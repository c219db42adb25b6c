"""Data-parallel helpers for runs under ``torchrun`` (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: torch.device) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank_and_world()


def all_reduce_mean_(tensors: list[torch.Tensor]) -> None:
    """Average tensors over all processes in place, as one flat buffer (one collective)."""
    _, world = rank_and_world()
    if world == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if rank_and_world()[1] > 1:
        dist.all_reduce(values)
    return values


def all_reduce_gradients(parameters) -> None:
    """Average gradients once per step.

    Every process trains the same subnets, so the same parameters hold gradients everywhere;
    the others keep ``None``, so the optimizer skips them exactly as a single process does
    (a zero gradient would still receive weight decay and momentum).
    """
    if rank_and_world()[1] == 1:
        return
    all_reduce_mean_([p.grad for p in parameters if p.grad is not None])


def sync_batch_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel mean and biased variance of ``x`` over every process's batch (autograd-aware)."""
    from torch.distributed.nn.functional import all_reduce

    # float64 moments: E[x^2] - E[x]^2 in float32 loses the digits a single process keeps
    count = x.numel() // x.shape[1]
    wide = x.double()
    moments = torch.cat([wide.sum(dim=(0, 2, 3)), (wide * wide).sum(dim=(0, 2, 3)),
                         torch.tensor([float(count)], device=x.device, dtype=torch.float64)])
    moments = all_reduce(moments)
    channels = x.shape[1]
    total = moments[-1]
    mean = moments[:channels] / total
    var = moments[channels : 2 * channels] / total - mean * mean
    return mean.to(x.dtype), var.clamp_min(0).to(x.dtype), int(total.item())
