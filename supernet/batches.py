"""Batching for training and evaluation: seeded epoch orders, slicing, resizing."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of epoch ``epoch``: a function of (seed, epoch) only, so a resumed run replays it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def iterate(dataset: Dataset, indices: torch.Tensor | np.ndarray, batch_size: int, *,
            num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of ``dataset`` in the order of ``indices`` (tensors are sliced directly, no loader)."""
    indices = torch.as_tensor(indices, dtype=torch.long)
    if isinstance(dataset, TensorDataset):
        images, labels = dataset.tensors
        for start in range(0, len(indices), batch_size):
            chosen = indices[start : start + batch_size]
            yield images[chosen], labels[chosen]
        return
    batches = [indices[i : i + batch_size].tolist() for i in range(0, len(indices), batch_size)]
    yield from DataLoader(dataset, batch_sampler=batches, num_workers=num_workers)


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Images at ``resolution`` px (bilinear), unchanged when already that size; token windows
    (batch, tokens) of integers cut to their first ``resolution`` tokens (a context length)."""
    if images.dim() == 2 and not images.is_floating_point():
        return images[:, :resolution]
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)
