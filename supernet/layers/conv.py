"""Elastic convolutions: channel slices are views of the full weight, never copies."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ElasticConv2d(nn.Module):
    """A dense convolution whose active output and input channels are leading slices."""

    def __init__(self, max_in: int, max_out: int, kernel_size: int = 1, stride: int = 1, bias: bool = False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.weight = nn.Parameter(torch.empty(max_out, max_in, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def forward(self, x: Tensor, out_channels: int) -> Tensor:
        bias = None if self.bias is None else self.bias[:out_channels]
        return F.conv2d(x, self.weight[:out_channels, : x.shape[1]], bias, self.stride, self.kernel_size // 2)

    def active_state(self, in_channels: int, out_channels: int) -> dict[str, Tensor]:
        state = {"weight": self.weight[:out_channels, :in_channels]}
        if self.bias is not None:
            state["bias"] = self.bias[:out_channels]
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
        weight = self.weight[:channels]
        src = self.kernel_choices[-1]
        for dst in reversed(self.kernel_choices[:-1]):
            if dst < kernel_size:
                break
            start = (src - dst) // 2
            centre = weight[:, :, start : start + dst, start : start + dst]
            matrix = self.transforms[f"{src}to{dst}"]
            weight = F.linear(centre.reshape(channels, dst * dst), matrix).view(channels, 1, dst, dst)
            src = dst
        return weight

