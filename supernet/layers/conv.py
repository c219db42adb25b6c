"""Elastic convolutions: channel slices are views of the full weight, never copies."""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@cache
def _centre_index(size: int, crop: int) -> Tensor:
    """Flat indices of the centre ``crop x crop`` window of a ``size x size`` kernel."""
    start = (size - crop) // 2
    rows = torch.arange(start, start + crop)
    return (rows[:, None] * size + rows[None, :]).reshape(-1)


class ElasticConv2d(nn.Module):
    """A dense convolution whose active output and input channels are leading slices."""

    def __init__(self, max_in: int, max_out: int, kernel_size: int = 1, stride: int = 1, bias: bool = False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.weight = nn.Parameter(torch.empty(max_out, max_in, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def forward(self, x: Tensor, out_channels: int) -> Tensor:
        state = self.active_state(x.shape[1], out_channels)
        return F.conv2d(x, state["weight"], state.get("bias"), self.stride, self.kernel_size // 2)

    def active_state(self, in_channels: int, out_channels: int) -> dict[str, Tensor]:
        # A full-size "slice" would still cost a slice op and a full zero-filled gradient in backward.
        full_out, full_in = self.weight.shape[:2]
        if (out_channels, in_channels) == (full_out, full_in):
            weight = self.weight
        elif in_channels == full_in:
            weight = self.weight[:out_channels]
        else:
            weight = self.weight[:out_channels, :in_channels]
        state = {"weight": weight}
        if self.bias is not None:
            state["bias"] = self.bias if out_channels == full_out else self.bias[:out_channels]
        return state


class ElasticDepthwiseConv2d(nn.Module):
    """Depthwise convolution with elastic channels and elastic kernel size.

    A smaller kernel is the centre of the next larger one passed through a learnable
    ``k*k x k*k`` transformation (identity at start), chained from the largest kernel down,
    as Once-for-All does: a 3x3 kernel is derived 7 -> 5 -> 3, so the sizes share weights
    without being forced to be plain crops of each other.
    """

    def __init__(self, max_channels: int, kernel_choices: tuple[int, ...], stride: int = 1):
        super().__init__()
        self.kernel_choices = tuple(sorted(kernel_choices))
        self.stride = stride
        k = self.kernel_choices[-1]
        self.weight = nn.Parameter(torch.empty(max_channels, 1, k, k))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.transforms = nn.ParameterDict(
            {
                f"{src}to{dst}": nn.Parameter(torch.eye(dst * dst))
                for src, dst in zip(self.kernel_choices[:0:-1], self.kernel_choices[-2::-1], strict=True)
            }
        )

    def forward(self, x: Tensor, kernel_size: int) -> Tensor:
        channels = x.shape[1]
        weight = self.active_weight(channels, kernel_size)
        return F.conv2d(x, weight, None, self.stride, kernel_size // 2, 1, channels)

    def active_state(self, channels: int, kernel_size: int) -> dict[str, Tensor]:
        return {"weight": self.active_weight(channels, kernel_size)}

    def active_weight(self, channels: int, kernel_size: int) -> Tensor:
        weight = self.weight if channels == self.weight.shape[0] else self.weight[:channels]
        largest = self.kernel_choices[-1]
        if kernel_size == largest:
            return weight
        # The chain crop -> transform -> crop -> transform ... is linear in the centre crop of
        # the next-smaller kernel, so it collapses into one (k*k x k'*k') matrix built from the
        # small transform matrices: one matmul over the channels instead of one per step.
        sizes = [k for k in reversed(self.kernel_choices[:-1]) if k >= kernel_size]
        matrix = self.transforms[f"{largest}to{sizes[0]}"]
        for src, dst in zip(sizes, sizes[1:], strict=False):
            matrix = self.transforms[f"{src}to{dst}"] @ matrix[_centre_index(src, dst)]
        first = sizes[0]
        start = (largest - first) // 2
        centre = weight[:, :, start : start + first, start : start + first].reshape(channels, first * first)
        return F.linear(centre, matrix).view(channels, 1, kernel_size, kernel_size)

