"""Channel groups and layouts: how the channels along a tensor's channel axis are made up.

Every conv or linear output starts a channel *group*; ops that must see equal widths (the two
sides of a residual add, a depthwise conv's input and output) join groups (union-find); a group
that something unprovable reads is *fixed*, with the reason kept for ``--explain``. A tensor's
:class:`Layout` lists the groups laid end to end along its channel axis (several after a
concatenation), each channel repeated over ``inner`` contiguous elements (H*W after a flatten).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class Layout:
    axis: int  # the channel axis (non-negative, batch included)
    segments: tuple[tuple[int, int], ...]  # (group, channels at full width), in order along the axis
    inner: int = 1  # contiguous elements per channel (a flatten of C x H x W makes it H*W)
    unit: int = 1  # channels per index along the axis: a head's width where attention split heads off

    @property
    def channels(self) -> int:
        return sum(size for _, size in self.segments) * self.inner

    def groups(self) -> list[int]:
        return [group for group, _ in self.segments]


class Groups:
    """Union-find over channel groups; each root knows its size, its origin and why it is fixed."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.origin: list[str] = []
        self.fixed: dict[int, str] = {}
        self.unit: dict[int, int] = {}  # root -> channels that shrink together (a head), where not 1
        self.parts: dict[int, list[int]] = {}  # a group split into consecutive groups (fused q, k, v)

    def new(self, size: int, origin: str, fixed: str | None = None) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.origin.append(origin)
        if fixed:
            self.fixed[len(self.parent) - 1] = fixed
        return len(self.parent) - 1

    def find(self, group: int) -> int:
        while self.parent[group] != group:
            self.parent[group] = self.parent[self.parent[group]]
            group = self.parent[group]
        return group

    def fix(self, group: int, reason: str) -> None:
        self.fixed.setdefault(self.find(group), reason)
        for part in self.parts.get(group, ()):  # a reader of the whole reads every part
            self.fix(part, reason)

    def refine(self, group: int, sizes: list[int], origin: str) -> list[int] | None:
        """Split a group nothing has joined into consecutive parts (a fused projection split into q, k, v)."""
        if self.find(group) != group or group in self.parts or sum(sizes) != self.size[group] or \
                any(self.find(g) == group for g in range(len(self.parent)) if g != group):
            return None
        self.parts[group] = [self.new(size, f"{origin}[{i}]", fixed=self.fixed.get(group))
                             for i, size in enumerate(sizes)]
        return self.parts[group]

    def expand(self, segments: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        """Segments with every refined group replaced by its parts."""
        out = []
        for group, size in segments:
            out += self.expand(tuple((p, self.size[p]) for p in self.parts[group])) if group in self.parts \
                else [(group, size)]
        return tuple(out)

    def reason(self, group: int) -> str | None:
        return self.fixed.get(self.find(group))

    def union(self, a: int, b: int, why: str) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] != self.size[b]:
            self.fix(a, f"{why} joins it to {self.size[b]} channels of another group")
            self.fix(b, f"{why} joins it to {self.size[a]} channels of another group")
            return
        keep, gone = min(a, b), max(a, b)  # the earlier group names the joined one
        units = {self.unit.get(a, 1), self.unit.get(b, 1)} - {1}
        if len(units) > 1:
            self.fix(a, f"{why} joins heads of {sorted(units)} channels")
        self.parent[gone] = keep
        if units:
            self.unit[keep] = max(units)
        reason = self.fixed.pop(gone, None) or self.fixed.get(keep)
        if reason:
            self.fixed[keep] = reason

    def join_layouts(self, a: Layout, b: Layout, why: str) -> bool:
        """Join two layouts segment by segment; False (and every group fixed) when they do not align."""
        if len(a.segments) != len(b.segments) or a.inner != b.inner or a.unit != b.unit or \
                any(sa != sb for (_, sa), (_, sb) in zip(a.segments, b.segments, strict=True)):
            for group in a.groups() + b.groups():
                self.fix(group, f"{why} meets channels laid out differently")
            return False
        for (ga, _), (gb, _) in zip(a.segments, b.segments, strict=True):
            self.union(ga, gb, why)
        return True

    def split(self, group: int, unit: int, why: str) -> bool:
        """Mark ``group`` as shrinking in whole blocks of ``unit`` channels (attention heads)."""
        root = self.find(group)
        if self.size[root] % unit or self.unit.get(root, unit) != unit:
            self.fix(root, f"{why} splits {self.size[root]} channels into heads of {unit}")
            return False
        self.unit[root] = unit
        return True

    def fix_layout(self, layout: Layout | None, reason: str) -> None:
        for group in layout.groups() if layout is not None else ():
            self.fix(group, reason)


def layout_indices(segments: tuple[tuple[int, int], ...], inner: int, kept: dict[int, int]) -> Tensor:
    """Indices along the axis of the channels an architecture keeps: the leading ``kept[g]`` of each
    segment of group ``g`` (all of a segment whose group has no entry)."""
    parts, offset = [], 0
    for group, size in segments:
        parts.append(torch.arange(offset, offset + kept.get(group, size)))
        offset += size
    channels = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
    if inner == 1:
        return channels
    return (channels[:, None] * inner + torch.arange(inner)).flatten()


def permuted_indices(segments: tuple[tuple[int, int], ...], inner: int, group: int, order: Tensor) -> Tensor:
    """Indices along the axis that apply ``order`` to every segment of ``group`` (others unchanged)."""
    parts, offset = [], 0
    for g, size in segments:
        parts.append(offset + (order if g == group else torch.arange(size)))
        offset += size
    channels = torch.cat(parts)
    if inner == 1:
        return channels
    return (channels[:, None] * inner + torch.arange(inner)).flatten()


@dataclass
class Binding:
    """A module whose weights are sliced: its kind (conv, linear, batchnorm, layernorm) and the
    layouts of its input and output channels."""

    kind: str
    inputs: Layout
    outputs: Layout
    calls: list[str] = field(default_factory=list)  # the nodes calling it (more than one: a shared module)
