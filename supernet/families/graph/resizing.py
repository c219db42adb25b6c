"""Sizes written into a graph's calls that count channels (``F.layer_norm``'s ``normalized_shape``, a
fused projection's ``split`` sections): rewritten for the channels a subnet keeps."""

from __future__ import annotations

# the call's argument that holds the size: (position, keyword names)
ARGUMENTS = {"normalized_shape": (1, ("normalized_shape",)), "sections": (1, ("split_size_or_sections", "split_size"))}


def kept_size(kind: str, segments: tuple[tuple[int, int], ...], kept: dict[int, int]):
    """The argument's value for the kept channels (``kept``: width gene -> channels)."""
    sizes = [kept.get(gene, size) for gene, size in segments]
    return (sum(sizes),) if kind == "normalized_shape" else sizes


def with_size(args: tuple, kwargs: dict, kind: str, value) -> tuple[tuple, dict]:
    position, names = ARGUMENTS[kind]
    if len(args) > position:
        return (*args[:position], value, *args[position + 1 :]), kwargs
    name = next((n for n in names if n in kwargs), names[0])
    return args, {**kwargs, name: value}
