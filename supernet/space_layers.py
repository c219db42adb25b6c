"""The network an architecture runs: a space's layer list, as deployed, and its vectorised layer ids.

:class:`LayerLists` is the part of :class:`~elasticnas.supernet.space.SearchSpace` that turns
gene values into layer specs (through the family's :class:`LayerSlot` list) and tabulates every
distinct layer once, so counters and latency tables look layers up by id for whole populations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from elasticnas.supernet.arch import FULL_PRECISION, Arch
from elasticnas.supernet.specs import LayerSpec, QuantizedSpec


@dataclass(frozen=True)
class LayerSlot:
    """One position of the layer list: the gene columns its layer depends on, and how to build it.

    ``build(*values)`` gets the choice values of ``genes`` in order and returns the layer's spec,
    or None when those genes switch the layer off.
    """

    genes: tuple[int, ...]
    build: Callable[..., LayerSpec | None]


class LayerLists:
    """Layer lists of a space; needs the space's ``genes``, ``_declare_layers``, ``_checked``,
    ``canonical_genes`` and ``searches_precision``."""

    @cached_property
    def layer_slots(self) -> tuple[LayerSlot, ...]:
        return self._declare_layers()

    def layers(self, arch: Arch) -> tuple[LayerSpec, ...]:
        """Every layer the architecture runs, in order, with its exact shapes."""
        values, _ = self._checked(arch)
        specs = (slot.build(*(values[c] for c in slot.genes)) for slot in self.layer_slots)
        return tuple(spec for spec in specs if spec is not None)

    @cached_property
    def deployed_slots(self) -> tuple[LayerSlot, ...]:
        """The layer slots as deployed: in a space that searches precision each slot also depends
        on the precision gene, and builds a :class:`QuantizedSpec` at int8 (the float32 layer
        otherwise), so that the ids of :meth:`layer_ids` tell an int8 layer from a float32 one."""
        if not self.searches_precision:
            return self.layer_slots
        precision = len(self.genes) - 1
        return tuple(LayerSlot((*slot.genes, precision), _at_precision(slot.build)) for slot in self.layer_slots)

    @cached_property
    def _slot_tables(self) -> tuple[list[LayerSpec], list[tuple[tuple[int, ...], np.ndarray]]]:
        """Every distinct deployed layer, and per slot the id of its layer for each combination of its genes."""
        distinct: dict[LayerSpec, int] = {}
        tables = []
        for slot in self.deployed_slots:
            counts = tuple(len(self.genes[c].choices) for c in slot.genes)
            ids = np.full(math.prod(counts), -1, dtype=np.int64)
            for flat, combo in enumerate(itertools.product(*(range(c) for c in counts))):
                spec = slot.build(*(self.genes[c].choices[i] for c, i in zip(slot.genes, combo, strict=True)))
                if spec is not None:
                    ids[flat] = distinct.setdefault(spec, len(distinct))
            tables.append((counts, ids))
        return list(distinct), tables

    @property
    def distinct_layers(self) -> list[LayerSpec]:
        """Every layer configuration any subnet of the space can run (index = layer id)."""
        return self._slot_tables[0]

    def layer_ids(self, genes: np.ndarray) -> np.ndarray:
        """``(archs, slots)`` ids into :attr:`distinct_layers` of each row's layers; -1 where off.

        Vectorised: a table lookup per slot, however the slots' genes depend on each other.
        """
        genes = self.canonical_genes(genes)
        _, tables = self._slot_tables
        out = np.empty((len(genes), len(tables)), dtype=np.int64)
        for position, (slot, (counts, ids)) in enumerate(zip(self.deployed_slots, tables, strict=True)):
            flat = np.ravel_multi_index(genes[:, list(slot.genes)].T, counts) if slot.genes else 0
            out[:, position] = ids[flat]
        return out

    def slot_ids_at(self, resolutions: Iterable[int]) -> list[np.ndarray]:
        """Per layer position, the layer id of every combination of its genes at these resolutions
        (-1 where the combination switches the layer off)."""
        wanted = [self.genes[0].choices.index(r) for r in resolutions]
        _, tables = self._slot_tables
        out = []
        for slot, (counts, ids) in zip(self.deployed_slots, tables, strict=True):
            if 0 in slot.genes:
                resolution_of = np.unravel_index(np.arange(len(ids)), counts)[slot.genes.index(0)]
                ids = ids[np.isin(resolution_of, wanted)]
            out.append(ids)
        return out

    def layers_at(self, resolutions: Iterable[int]) -> list[LayerSpec]:
        """Distinct layers any subnet at these resolutions can run, in slot order."""
        seen = dict.fromkeys(int(i) for ids in self.slot_ids_at(resolutions) for i in ids if i >= 0)
        return [self.distinct_layers[i] for i in seen]


def _at_precision(build: Callable[..., LayerSpec | None]) -> Callable[..., LayerSpec | None]:
    def build_deployed(*values: Any) -> LayerSpec | None:
        *genes, bits = values
        spec = build(*genes)
        return spec if spec is None or bits == FULL_PRECISION else QuantizedSpec(spec, bits)
    return build_deployed
