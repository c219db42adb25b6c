"""The family seam for search spaces: named genes, canonical forms, encodings, layer lists.

A family's space is a frozen dataclass (pure data: its skeleton and its choices) that
subclasses :class:`SearchSpace` and implements three hooks:

- ``_declare_genes()``: every choice as a :class:`Gene`, resolution first;
- ``_declare_layers()``: the layer list as :class:`LayerSlot` positions, each naming the genes
  its layer depends on and building the layer's spec from their values;
- ``arch_type``: the family's :class:`~elasticnas.supernet.arch.Arch` subclass.

Every space also has ``precisions`` (keyword-only, default ``(32,)``): the number formats its
subnets may be deployed in. With more than float32 the space adds one last gene, ``precision``
(bits, e.g. ``(8, 32)``), and its :attr:`deployed_slots` tell int8 layers from float32 ones
(:class:`~elasticnas.supernet.specs.QuantizedSpec`), so latency tables, counters, predictors
and search see precision as one more gene of any family.

Everything else (sampling, min/max, canonical genes, integer encoding, validation, the exact
size, layer lists, vectorised layer lookup for counting and latency tables) is generic, so
counting, search, predictors and export never name a family.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from elasticnas.core.errors import ConfigError, InvalidArchitectureError
from elasticnas.supernet.arch import FULL_PRECISION, INACTIVE, PRECISIONS, Arch, as_number
from elasticnas.supernet.space_fields import (  # noqa: F401 - families import these from here
    check_classes_and_channels,
    check_distinct_middles,
    check_per_stage,
    normalise_fields,
    sorted_choices,
)
from elasticnas.supernet.space_layers import LayerLists, LayerSlot  # noqa: F401 - families import LayerSlot here


@dataclass(frozen=True)
class Gene:
    """One choice of an architecture, held by ``field[index]`` of the family's Arch."""

    field: str  # the Arch field that holds it
    index: int | None  # position within that field; None when the field is a single value
    dimension: str  # the kind of choice: resolution, depth, kernel, expand, width, ...
    choices: tuple  # sorted ascending
    active_if: tuple[int, Any] | None = None  # (column of a controlling gene, least value): else inactive

    @property
    def name(self) -> str:
        return self.field if self.index is None else f"{self.field}[{self.index}]"


@dataclass(frozen=True)
class DeploymentChoices:
    """The fields every space has beside its family's own (keyword-only, so families keep their order)."""

    precisions: tuple[int, ...] = field(default=(FULL_PRECISION,), kw_only=True)  # bits; (8, 32) adds int8


class SearchSpace(LayerLists, DeploymentChoices):
    """Base of every family's space (see the module docstring for the hooks)."""

    arch_type: ClassVar[type[Arch]]
    # dimensions progressive shrinking makes elastic, in order, after training the full network
    shrink_order: ClassVar[tuple[str, ...]]
    # dimensions whose smaller choices keep leading channels: channels are re-ordered before they shrink
    reorder_dimensions: ClassVar[tuple[str, ...]] = ("expand",)
    # what a subnet reads: "image" (batch, channels, resolution, resolution) or "text" (batch, tokens)
    modality: ClassVar[str] = "image"
    # kinds of pass timed apart (a language model's prompt and its next token), each its own latency
    # table: see in_phase; a space with one kind of pass lists none
    phases: ClassVar[tuple[str, ...]] = ()

    name: str
    family: str
    num_classes: int
    in_channels: int
    resolutions: tuple[int, ...]
    bn_momentum: float
    bn_eps: float

    def __getstate__(self) -> dict:
        """The declared fields only: cached derived tables are rebuilt on use, so a saved
        predictor holding its space stays small (and skops need not walk layer tables)."""
        cached = {name for klass in type(self).__mro__ for name, value in vars(klass).items()
                  if isinstance(value, cached_property)}
        return {k: v for k, v in vars(self).items() if k not in cached}

    def in_phase(self, phase: str) -> SearchSpace:
        """This space costing and timing ``phase`` (one of :attr:`phases`): the same subnets and weights."""
        raise ConfigError(f"space {self.name!r} times one kind of pass: it has no phase {phase!r} (phases are "
                          f"for spaces that time several, as a language model's prefill and decode)")

    def _declare_genes(self) -> tuple[Gene, ...]:
        raise NotImplementedError

    def _declare_layers(self) -> tuple[LayerSlot, ...]:
        raise NotImplementedError

    # ----- genes ------------------------------------------------------------------------
    @property
    def searches_precision(self) -> bool:
        return tuple(self.precisions) != (FULL_PRECISION,)

    @cached_property
    def genes(self) -> tuple[Gene, ...]:
        genes = self._declare_genes()
        if genes[0].dimension != "resolution":
            raise ConfigError(f"{type(self).__name__}: the first gene must be the resolution")
        if self.searches_precision:  # last, so the family's gene columns do not move
            genes = (*genes, Gene("precision", None, "precision", tuple(self.precisions)))
        for gene in genes:
            if gene.active_if is not None and INACTIVE in gene.choices:
                raise ConfigError(f"gene {gene.name} can be switched off, so {INACTIVE} cannot be one of its choices")
        return genes

    @cached_property
    def _gene_groups(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(field, columns)`` per Arch field, in field order."""
        groups = ((f, tuple(i for i, g in enumerate(self.genes) if g.field == f)) for f in self.arch_type.field_names())
        return tuple((f, columns) for f, columns in groups if columns)  # precision has no gene in a float32 space

    @cached_property
    def _draw_groups(self) -> tuple[tuple[int, ...], ...]:
        """Runs of columns within a field that share their choices: each run is drawn in one call."""
        runs = []
        for _, columns in self._gene_groups:
            for column in columns:
                if runs and runs[-1][-1] == column - 1 and self.genes[runs[-1][0]].field == self.genes[column].field \
                        and self.genes[runs[-1][0]].choices == self.genes[column].choices:
                    runs[-1].append(column)
                else:
                    runs.append([column])
        return tuple(tuple(run) for run in runs)

    @cached_property
    def _choice_index(self) -> tuple[dict, ...]:
        return tuple({v: i for i, v in enumerate(g.choices)} for g in self.genes)

    @property
    def encoding_upper_bounds(self) -> np.ndarray:
        """Inclusive upper bound of each integer gene."""
        return np.array([len(g.choices) - 1 for g in self.genes])

    def active_mask(self, genes: np.ndarray) -> np.ndarray:
        """Which genes of each row of an integer gene matrix are active (bool, same shape)."""
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, len(self.genes))
        mask = np.ones(genes.shape, dtype=bool)
        for column, gene in enumerate(self.genes):
            if gene.active_if is not None:
                controller, least = gene.active_if
                values = np.asarray(self.genes[controller].choices)[genes[:, controller]]
                mask[:, column] = values >= least
        return mask

    def canonical_genes(self, genes: np.ndarray) -> np.ndarray:
        """``genes`` with every inactive gene set to 0: equal subnets get equal rows."""
        genes = np.array(genes, dtype=np.int64, copy=True).reshape(-1, len(self.genes))
        return np.where(self.active_mask(genes), genes, 0)

    # ----- architectures ------------------------------------------------------------------
    @cached_property
    def _plain_choices(self) -> tuple[tuple, ...]:
        """Each gene's choices as an Arch stores them (1.0 becomes 1)."""
        return tuple(tuple(as_number(c, g.name) for c in g.choices) for g in self.genes)

    def _arch_from_indices(self, indices: Sequence[int]) -> Arch:
        """The canonical Arch of a gene vector: inactive genes become INACTIVE.

        Built without the Arch's own checks: every value comes from the space's choices, and
        decoding whole populations is the hot path of search.
        """
        chosen = [c[int(i)] for c, i in zip(self._plain_choices, indices, strict=True)]
        chosen = [v if g.active_if is None or chosen[g.active_if[0]] >= g.active_if[1] else INACTIVE
                  for g, v in zip(self.genes, chosen, strict=True)]
        arch = object.__new__(self.arch_type)
        object.__setattr__(arch, "precision", FULL_PRECISION)  # replaced below when the space has the gene
        for name, columns in self._gene_groups:
            value = chosen[columns[0]] if self.genes[columns[0]].index is None else tuple(chosen[c] for c in columns)
            object.__setattr__(arch, name, value)
        for name, default in self._geneless_fields:
            object.__setattr__(arch, name, default)
        return arch

    @cached_property
    def _geneless_fields(self) -> tuple[tuple[str, Any], ...]:
        """Arch fields no gene of this space holds (a family whose gene lists may be empty), with their defaults."""
        held = {name for name, _ in self._gene_groups} | {"precision"}
        return tuple((f.name, f.default) for f in fields(self.arch_type) if f.name not in held)

    def _uniform(self, pick: Callable[[tuple], int]) -> Arch:
        return self._arch_from_indices([pick(g.choices) for g in self.genes])

    def max(self) -> Arch:
        return self._uniform(lambda c: len(c) - 1)

    def min(self) -> Arch:
        return self._uniform(lambda c: 0)

    def middle(self) -> Arch:
        """Every gene at its middle choice (the lower middle for an even count)."""
        return self._uniform(lambda c: (len(c) - 1) // 2)

    def sample(self, rng: np.random.Generator | int | None = None, n: int | None = None, *,
               dimensions: Iterable[str] | None = None) -> Arch | list[Arch]:
        """Draw one architecture (or a list of ``n``), every gene uniform over its choices.

        ``rng`` is a ``numpy.random.Generator`` or a seed; the global RNG is never touched.
        ``dimensions``, when given, limits the draw to genes of those dimensions; the others
        take their largest choice (progressive shrinking grows the elastic set this way).
        """
        rng = np.random.default_rng(rng)
        if n is not None:
            return [self.sample(rng, dimensions=dimensions) for _ in range(n)]
        wanted = None if dimensions is None else set(dimensions)
        indices = [len(g.choices) - 1 for g in self.genes]
        for columns in self._draw_groups:
            if wanted is not None and self.genes[columns[0]].dimension not in wanted:
                continue
            count = len(self.genes[columns[0]].choices)
            scalar = self.genes[columns[0]].index is None
            drawn = rng.integers(count) if scalar else rng.integers(count, size=len(columns))
            for column, index in zip(columns, np.atleast_1d(drawn), strict=True):
                indices[column] = int(index)
        return self._arch_from_indices(indices)

    def sample_at_level(self, rng: np.random.Generator, level: float) -> Arch:
        """A subnet whose genes lean towards small (``level`` 0) or large (1) choices:
        each choice index is Binomial(choices - 1, level).

        Precision is drawn uniformly whatever the level: it does not make a subnet larger, and
        tying it to the level would pair small subnets with int8 and large ones with float32,
        so a plan spread over sizes would cover neither precision over the whole range.
        """
        indices = [0] * len(self.genes)
        for columns in self._draw_groups:
            count = len(self.genes[columns[0]].choices)
            if self.genes[columns[0]].dimension == "precision":
                drawn = rng.integers(count, size=len(columns))
            else:
                drawn = rng.binomial(count - 1, level, size=len(columns))
            for column, index in zip(columns, drawn, strict=True):
                indices[column] = int(index)
        return self._arch_from_indices(indices)

    @property
    def size(self) -> int:
        """Exact number of distinct canonical subnets (active networks)."""
        controlled: dict[int, list[Gene]] = {}
        for gene in self.genes:
            if gene.active_if is not None:
                controlled.setdefault(gene.active_if[0], []).append(gene)
        total = 1
        for column, gene in enumerate(self.genes):
            if gene.active_if is not None:
                continue
            total *= sum(math.prod(len(h.choices) for h in controlled.get(column, []) if value >= h.active_if[1])
                         for value in gene.choices)
        return total

    @property
    def log10_size(self) -> float:
        return math.log10(self.size)

    # ----- validation and canonical forms --------------------------------------------------
    def validate(self, arch: Arch) -> Arch:
        """Return ``arch`` if it belongs to this space, else raise naming the field and the allowed values."""
        self._checked(arch)
        return arch

    def _checked(self, arch: Arch) -> tuple[list, list[bool]]:
        """The gene values of a valid ``arch`` and which are active; raises as :meth:`validate` does."""
        if not isinstance(arch, self.arch_type):
            raise InvalidArchitectureError(f"expected a {self.arch_type.__name__} of space {self.name!r}, "
                                           f"but got {type(arch).__name__}")
        self.check_resolution(arch.resolution)
        if arch.precision not in self.precisions:
            raise InvalidArchitectureError(
                f"precision={arch.precision} ({PRECISIONS[arch.precision]}) is not searched by space {self.name!r}; "
                f"its precisions are {list(self.precisions)} (add 8 to the space's precisions for int8)")
        for name, columns in self._gene_groups:
            if self.genes[columns[0]].index is not None and len(getattr(arch, name)) != len(columns):
                raise InvalidArchitectureError(
                    f"architecture has {len(getattr(arch, name))} {name}; space {self.name!r} has {len(columns)}")
        values = self._values_of(arch)
        active = [g.active_if is None or values[g.active_if[0]] >= g.active_if[1] for g in self.genes]
        for gene, index, value, on in zip(self.genes, self._choice_index, values, active, strict=True):
            if on and value not in index:
                raise InvalidArchitectureError(
                    f"{gene.name}={value} is not allowed; choose one of {list(gene.choices)}")
        return values, active

    def _values_of(self, arch: Arch) -> list:
        return [getattr(arch, g.field) if g.index is None else getattr(arch, g.field)[g.index] for g in self.genes]

    def check_resolution(self, resolution: int) -> None:
        if resolution not in self.resolutions:
            raise InvalidArchitectureError(
                f"resolution={resolution} is not allowed; choose one of {list(self.resolutions)}")

    def arch_from_dict(self, data: Mapping[str, Any]) -> Arch:
        """Read the native dict form (a family may accept its reference code's form too)."""
        return self.arch_type.from_dict(data, default_resolution=max(self.resolutions))

    def to_foreign_dict(self, arch: Arch) -> dict[str, Any] | None:
        """The architecture in the family's reference form (Once-for-All's), or None if it has none."""
        return None

    def canonical(self, arch: Arch | Mapping[str, Any] | str) -> Arch:
        """The validated canonical form of an Arch, a dict (native or the family's reference form) or JSON text."""
        if isinstance(arch, str):
            try:
                arch = json.loads(arch)
            except json.JSONDecodeError as exc:
                raise InvalidArchitectureError(f"architecture JSON does not parse: {exc}") from None
        if isinstance(arch, Mapping):
            arch = self.arch_from_dict(arch)
        values, active = self._checked(arch)
        if all(on or v == INACTIVE for v, on in zip(values, active, strict=True)):
            return arch
        # an Arch that cannot see the whole layout may hold dead genes: rebuild it from its genes
        return self._arch_from_indices(self.encode([arch])[0])

    def from_dict(self, data: Mapping[str, Any]) -> Arch:
        """Architecture from a native or reference-form dict, validated and canonical."""
        if not isinstance(data, Mapping):
            raise InvalidArchitectureError(f"expected a dict, but got {type(data).__name__}")
        return self.canonical(data)

    # ----- integer encoding (search operators work on it) -------------------------------------
    def encode(self, archs: Arch | Iterable[Arch]) -> np.ndarray:
        """Choice indices; inactive genes encode as 0 so equal archs encode equally."""
        if isinstance(archs, Arch):
            return self.encode([archs])[0]
        rows = []
        for arch in archs:
            values, active = self._checked(arch)
            rows.append([i[v] if on else 0 for i, v, on in zip(self._choice_index, values, active, strict=True)])
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), len(self.genes))

    def decode(self, genes: np.ndarray) -> Arch | list[Arch]:
        genes = np.asarray(genes)
        if genes.ndim == 2:
            return [self.decode(row) for row in genes]
        upper = self.encoding_upper_bounds
        if genes.shape != upper.shape or (genes < 0).any() or (genes > upper).any():
            raise InvalidArchitectureError(
                f"gene vector of shape {genes.shape} is outside the encoding (length {len(upper)}, "
                f"each gene between 0 and {upper.tolist()})")
        return self._arch_from_indices(genes)

    def static_model(self, arch: Arch):
        """A freshly initialised standalone model of ``arch`` (the layers of :meth:`layers` in a row; a
        family whose layers form a graph builds its own), to be filled by the supernet's active weights."""
        from elasticnas.supernet.static import sequential_model

        return sequential_model(self, arch)

    def timing_model(self, arch: Arch, model=None):
        """What is timed end to end for ``arch``: ``model`` (default: a fresh static model of it), as it
        runs when deployed (a text family in its decode phase: one generation step over a filled KV cache)."""
        return self.static_model(arch) if model is None else model

    def foreign_files(self, arch: Arch, state: dict) -> dict[str, bytes]:
        """Files in another tool's own format that an export of ``arch`` (its static model's ``state``)
        also holds, by path within the export folder; none unless the family has some."""
        return {}

    def example_input(self, arch: Arch, batch: int = 1, generator=None):
        """A random input of ``arch``: images at its resolution (a text family: token ids at its context length)."""
        import torch

        return torch.randn(batch, self.in_channels, arch.resolution, arch.resolution, generator=generator)

    def output_shape(self, arch: Arch) -> tuple[int, ...]:
        """The shape of one input's output: class scores (a text family: one row of logits per token)."""
        return (self.num_classes,)

    # ----- the space itself --------------------------------------------------------------------
    def _declared(self) -> dict[str, Any]:
        """The fields; precisions only when not float32 alone, so float32 spaces keep their fingerprints."""
        declared = asdict(self)
        if not self.searches_precision:
            declared.pop("precisions")
        return declared

    @property
    def fingerprint(self) -> str:
        """Short stable hash of everything that defines the space; guards against mixing spaces."""
        payload = json.dumps(self._declared(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_config(self) -> dict[str, Any]:
        """JSON-ready description of the space itself (not of an architecture)."""
        return json.loads(json.dumps(self._declared()))

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> SearchSpace:
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ConfigError(f"unknown space fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**data)
