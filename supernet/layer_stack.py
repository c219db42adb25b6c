"""A stack of like layers under a depth gene: the genes and layer slots transformer-style spaces share.

The first three genes are the resolution, a width every layer reads (e.g. the embedding width)
and the depth; then, for each per-layer field, one gene per layer slot. Slot ``i`` runs while
the depth exceeds ``i``: its genes are inactive beyond it, and the slots every depth runs do not
depend on the depth gene at all, so they keep one layer id whatever the depth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from elasticnas.supernet.space import Gene
from elasticnas.supernet.space_layers import LayerSlot
from elasticnas.supernet.specs import LayerSpec

RESOLUTION, WIDTH, DEPTH = 0, 1, 2  # gene columns
FIRST_LAYER_GENE = 3


def stack_genes(resolutions: Sequence[int], width: tuple[str, Sequence], depth_choices: Sequence[int],
                per_layer: Sequence[tuple[str, str, Sequence]]) -> tuple[Gene, ...]:
    """Resolution, ``width`` (its Arch field and choices), depth, then ``per_layer``'s ``(field,
    dimension, choices)`` as one gene per layer slot each."""
    least, slots = min(depth_choices), max(depth_choices)
    genes = [Gene("resolution", None, "resolution", tuple(resolutions)), Gene(width[0], None, "width", tuple(width[1])),
             Gene("depth", None, "depth", tuple(depth_choices))]
    for field, dimension, choices in per_layer:
        genes += [Gene(field, i, dimension, tuple(choices), active_if=(DEPTH, i + 1) if i >= least else None)
                  for i in range(slots)]
    return tuple(genes)


def stack_slots(depth_choices: Sequence[int], fields: int,
                build: Callable[..., LayerSpec]) -> list[LayerSlot]:
    """One slot per layer of the stack: ``build(resolution, width, *that layer's gene values)`` gives its
    spec, and a slot beyond the depth gives none. ``fields``: the per-layer genes of :func:`stack_genes`."""
    least, slots = min(depth_choices), max(depth_choices)
    stack = []
    for i in range(slots):
        columns = tuple(FIRST_LAYER_GENE + k * slots + i for k in range(fields))
        if i < least:
            stack.append(LayerSlot((RESOLUTION, WIDTH, *columns), build))
        else:
            stack.append(LayerSlot((RESOLUTION, WIDTH, DEPTH, *columns), _while_deeper_than(i, build)))
    return stack


def _while_deeper_than(index: int, build: Callable[..., LayerSpec]) -> Callable[..., LayerSpec | None]:
    def build_if_run(resolution, width, depth, *values):
        return build(resolution, width, *values) if depth > index else None

    return build_if_run
