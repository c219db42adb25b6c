"""Elastic batch norm: affine parameters and running statistics are leading slices."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from elasticnas.core.distributed import rank_and_world, sync_batch_statistics


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` over the first ``x.shape[1]`` channels of its maximum width.

    The sliced running statistics are views, so training updates the shared buffers in place.
    """

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        if self.training and rank_and_world()[1] > 1:
            return self._synchronised(x, channels)
        if channels == self.num_features:
            return super().forward(x)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative average, used for exact BN recalibration
                momentum = 1.0 / float(self.num_batches_tracked)
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean[:channels] if self.track_running_stats else None,
            self.running_var[:channels] if self.track_running_stats else None,
            self.weight[:channels],
            self.bias[:channels],
            use_batch_stats,
            momentum,
            self.eps,
        )

    def _synchronised(self, x: Tensor, channels: int) -> Tensor:
        """Batch statistics over the global batch of all processes (sync batch norm)."""
        mean, var, count = sync_batch_statistics(x)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * count / max(count - 1, 1)
                self.running_mean[:channels].mul_(1 - momentum).add_(momentum * mean)
                self.running_var[:channels].mul_(1 - momentum).add_(momentum * unbiased)
        scale = self.weight[:channels] * torch.rsqrt(var + self.eps)
        shift = self.bias[:channels] - mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    def active_state(self, channels: int) -> dict[str, Tensor]:
        return {
            "weight": self.weight[:channels],
            "bias": self.bias[:channels],
            "running_mean": self.running_mean[:channels],
            "running_var": self.running_var[:channels],
            "num_batches_tracked": self.num_batches_tracked.clone() if self.num_batches_tracked is not None
            else torch.tensor(0),
        }
