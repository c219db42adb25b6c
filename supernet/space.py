"""The MobileNetV3 search space: a fixed skeleton plus named choice dimensions.

The space is declarative and pure data: it knows the network's skeleton (widths, strides,
activations, squeeze-excite placement, head) and the choices (resolution, depth per
stage, kernel size and expand ratio per block slot). Everything that works on
architectures rather than torch modules (counting, lookup tables, predictors, search)
needs only this object.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from elasticnas.supernet.arch import INACTIVE, Arch
from elasticnas.supernet.errors import ConfigError, InvalidArchitectureError
from elasticnas.supernet.layout import (
    ConvSpec,
    LayerSpec,
    LinearSpec,
    MBConvSpec,
    PoolSpec,
    middle_channels,
    se_channels,
)

ACTIVATIONS = ("relu", "hswish")


@dataclass(frozen=True)
class MobileNetV3Space:
    """Skeleton and choices of a MobileNetV3-style elastic network.

    Layers, in order: stem conv; one fixed inverted-residual block (expand ratio 1, 3x3);
    ``len(stage_channels)`` elastic stages of up to ``max(depth_choices)`` blocks; a 1x1
    final expansion; global pooling; a 1x1 feature-mix conv (no batch norm); the classifier.
    """

    name: str  # the registry name of the preset this space came from
    num_classes: int
    in_channels: int
    stem_channels: int  # width of the stem conv, which has stride stem_stride
    first_block_channels: int  # width of the fixed first block
    stage_channels: tuple[int, ...]  # output width of each elastic stage
    stage_strides: tuple[int, ...]  # stride of each stage's first block
    stage_activations: tuple[str, ...]  # 'relu' or 'hswish' per stage
    stage_se: tuple[bool, ...]  # squeeze-excite in the blocks of each stage
    final_expand_channels: int
    feature_mix_channels: int
    resolutions: tuple[int, ...]
    depth_choices: tuple[int, ...]
    kernel_choices: tuple[int, ...]
    expand_choices: tuple[int | float, ...]
    stem_stride: int = 2
    stem_activation: str = "hswish"
    first_block_activation: str = "relu"
    first_block_se: bool = False
    dropout: float = 0.1  # before the classifier, in training only
    se_reduction: int = 4
    channel_divisor: int = 8
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    family: str = "mobilenetv3"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        for name in ("resolutions", "depth_choices", "kernel_choices", "expand_choices"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"{name} must be a non-empty list of distinct values, but got {list(values)}")
            object.__setattr__(self, name, tuple(sorted(values)))
        n = len(self.stage_channels)
        for name in ("stage_strides", "stage_activations", "stage_se"):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"{name} needs one entry per stage ({n}), but got {list(getattr(self, name))}")
        acts = (*self.stage_activations, self.stem_activation, self.first_block_activation)
        bad = [a for a in acts if a not in ACTIVATIONS]
        if bad:
            raise ConfigError(f"unknown activation {bad[0]!r}; choose one of {list(ACTIVATIONS)}")
        if min(self.depth_choices) < 1:
            raise ConfigError(f"depth_choices must be >= 1, but got {list(self.depth_choices)}")
        if any(k % 2 == 0 or k < 1 for k in self.kernel_choices):
            raise ConfigError(f"kernel_choices must be odd, but got {list(self.kernel_choices)}")
        if self.num_classes < 1 or self.in_channels < 1:
            raise ConfigError(f"num_classes and in_channels must be >= 1, got {self.num_classes=}, {self.in_channels=}")
        for in_c in {self.first_block_channels, *self.stage_channels}:
            mids = [middle_channels(in_c, e, self.channel_divisor) for e in self.expand_choices]
            if len(set(mids)) != len(mids):
                raise ConfigError(
                    f"expand_choices {list(self.expand_choices)} give duplicate middle widths {mids} "
                    f"for {in_c} input channels; two genes would name the same network"
                )

    # ----- shape of the space -------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.stage_channels)

    @property
    def max_depth(self) -> int:
        return max(self.depth_choices)

    @property
    def num_slots(self) -> int:
        return self.num_stages * self.max_depth

    @property
    def size(self) -> int:
        """Exact number of distinct canonical subnets (active networks)."""
        per_block = len(self.kernel_choices) * len(self.expand_choices)
        per_stage = sum(per_block**d for d in self.depth_choices)
        return len(self.resolutions) * per_stage**self.num_stages

    @property
    def fingerprint(self) -> str:
        """Short stable hash of everything that defines the space; guards against mixing spaces."""
        payload = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_config(self) -> dict[str, Any]:
        """JSON-ready description of the space itself (not of an architecture)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> MobileNetV3Space:
        allowed = {f.name for f in fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ConfigError(f"unknown space fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**data)

    # ----- architectures ------------------------------------------------------------
    def max(self) -> Arch:
        return self._uniform(max(self.resolutions), self.max_depth, max(self.kernel_choices), max(self.expand_choices))

    def min(self) -> Arch:
        return self._uniform(
            min(self.resolutions), min(self.depth_choices), min(self.kernel_choices), min(self.expand_choices)
        )

    def middle(self) -> Arch:
        """Every dimension at its middle choice (the lower middle for an even count)."""
        def mid(choices):
            return choices[(len(choices) - 1) // 2]

        return self._uniform(mid(self.resolutions), mid(self.depth_choices), mid(self.kernel_choices),
                             mid(self.expand_choices))

    def _uniform(self, resolution: int, depth: int, kernel: int, expand: int | float) -> Arch:
        return Arch(resolution, (depth,) * self.num_stages, (kernel,) * self.num_slots, (expand,) * self.num_slots)

    def sample(self, rng: np.random.Generator | int | None = None, n: int | None = None) -> Arch | list[Arch]:
        """Draw one architecture (or a list of ``n``) with every gene uniform over its choices.

        ``rng`` is a ``numpy.random.Generator`` or a seed; the global RNG is never touched.
        """
        rng = np.random.default_rng(rng)
        if n is not None:
            return [self.sample(rng) for _ in range(n)]
        return Arch(
            resolution=int(rng.choice(self.resolutions)),
            depths=tuple(int(d) for d in rng.choice(self.depth_choices, self.num_stages)),
            kernel_sizes=tuple(int(k) for k in rng.choice(self.kernel_choices, self.num_slots)),
            expand_ratios=tuple(
                self.expand_choices[i] for i in rng.integers(len(self.expand_choices), size=self.num_slots)
            ),
        )

    def validate(self, arch: Arch) -> Arch:
        """Return ``arch`` if it belongs to this space, else raise naming the field and the allowed values."""
        if not isinstance(arch, Arch):
            raise InvalidArchitectureError(f"expected an Arch, but got {type(arch).__name__}")
        self._check_resolution(arch.resolution)
        if arch.num_stages != self.num_stages or len(arch.kernel_sizes) != self.num_slots:
            raise InvalidArchitectureError(
                f"architecture has {arch.num_stages} stages and {len(arch.kernel_sizes)} block slots; "
                f"space {self.name!r} has {self.num_stages} stages and {self.num_slots} slots"
            )
        for stage, depth in enumerate(arch.depths):
            if depth not in self.depth_choices:
                raise InvalidArchitectureError(
                    f"depths[{stage}]={depth} is not allowed; choose one of {list(self.depth_choices)}"
                )
        for stage, block, kernel, expand in arch.active_blocks():
            slot = stage * self.max_depth + block
            if kernel not in self.kernel_choices:
                raise InvalidArchitectureError(
                    f"kernel_sizes[{slot}]={kernel} (stage {stage}, block {block}) is not allowed; "
                    f"choose one of {list(self.kernel_choices)}"
                )
            if expand not in self.expand_choices:
                raise InvalidArchitectureError(
                    f"expand_ratios[{slot}]={expand} (stage {stage}, block {block}) is not allowed; "
                    f"choose one of {list(self.expand_choices)}"
                )
        return arch

    def canonical(self, arch: Arch | Mapping[str, Any] | str) -> Arch:
        """The validated canonical form of an Arch, a dict (native or Once-for-All) or JSON text."""
        if isinstance(arch, str):
            arch = Arch.from_json(arch, default_resolution=max(self.resolutions))
        elif isinstance(arch, Mapping):
            arch = Arch.from_dict(arch, default_resolution=max(self.resolutions))
        return self.validate(arch)

    def from_dict(self, data: Mapping[str, Any]) -> Arch:
        """Architecture from a native or Once-for-All/DyNAS-T dict, validated and canonical.

        A Once-for-All dict without ``r`` takes the space's largest resolution.
        """
        if not isinstance(data, Mapping):
            raise InvalidArchitectureError(f"expected a dict, but got {type(data).__name__}")
        return self.canonical(data)

    # ----- integer encoding (search operators work on it) ---------------------------
    @property
    def encoding_upper_bounds(self) -> np.ndarray:
        """Inclusive upper bound of each integer gene: resolution, depths, kernels, expands."""
        return np.array(
            [len(self.resolutions) - 1]
            + [len(self.depth_choices) - 1] * self.num_stages
            + [len(self.kernel_choices) - 1] * self.num_slots
            + [len(self.expand_choices) - 1] * self.num_slots
        )

    def encode(self, archs: Arch | Iterable[Arch]) -> np.ndarray:
        """Choice indices; genes of inactive slots encode as 0 so equal archs encode equally."""
        if isinstance(archs, Arch):
            return self.encode([archs])[0]
        rows = []
        for arch in archs:
            self.validate(arch)
            row = [self.resolutions.index(arch.resolution)]
            row += [self.depth_choices.index(d) for d in arch.depths]
            row += [0 if k == INACTIVE else self.kernel_choices.index(k) for k in arch.kernel_sizes]
            row += [0 if e == INACTIVE else self.expand_choices.index(e) for e in arch.expand_ratios]
            rows.append(row)
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), -1)

    def decode(self, genes: np.ndarray) -> Arch | list[Arch]:
        genes = np.asarray(genes)
        if genes.ndim == 2:
            return [self.decode(row) for row in genes]
        upper = self.encoding_upper_bounds
        if genes.shape != upper.shape or (genes < 0).any() or (genes > upper).any():
            raise InvalidArchitectureError(
                f"gene vector of shape {genes.shape} is outside the encoding (length {len(upper)}, "
                f"each gene between 0 and {upper.tolist()})"
            )
        s, n = self.num_stages, self.num_slots
        return Arch(
            resolution=self.resolutions[genes[0]],
            depths=tuple(self.depth_choices[i] for i in genes[1 : 1 + s]),
            kernel_sizes=tuple(self.kernel_choices[i] for i in genes[1 + s : 1 + s + n]),
            expand_ratios=tuple(self.expand_choices[i] for i in genes[1 + s + n :]),
        )

    # ----- the network an architecture runs -----------------------------------------
    def layers(self, arch: Arch) -> tuple[LayerSpec, ...]:
        """Every layer the architecture runs, in order, with its exact shapes."""
        self.validate(arch)
        return self._layers(arch)

    def _layers(self, arch: Arch) -> tuple[LayerSpec, ...]:
        div = self.channel_divisor
        specs: list[LayerSpec] = []
        stem = ConvSpec(
            self.in_channels, self.stem_channels, 3, self.stem_stride, arch.resolution, self.stem_activation
        )
        specs.append(stem)
        res, channels = stem.out_resolution, self.stem_channels
        first = MBConvSpec(
            in_channels=channels,
            mid_channels=channels,
            out_channels=self.first_block_channels,
            kernel_size=3,
            stride=1,
            resolution=res,
            activation=self.first_block_activation,
            se_channels=se_channels(channels, self.se_reduction, div) if self.first_block_se else 0,
            expand=False,
            residual=channels == self.first_block_channels,
        )
        specs.append(first)
        channels = self.first_block_channels
        for stage, block, kernel, expand in arch.active_blocks():
            stride = self.stage_strides[stage] if block == 0 else 1
            out = self.stage_channels[stage]
            mid = middle_channels(channels, expand, div)
            spec = MBConvSpec(
                in_channels=channels,
                mid_channels=mid,
                out_channels=out,
                kernel_size=kernel,
                stride=stride,
                resolution=res,
                activation=self.stage_activations[stage],
                se_channels=se_channels(mid, self.se_reduction, div) if self.stage_se[stage] else 0,
                expand=True,
                residual=stride == 1 and channels == out,
            )
            specs.append(spec)
            res, channels = spec.out_resolution, out
        specs.append(ConvSpec(channels, self.final_expand_channels, 1, 1, res, "hswish"))
        specs.append(PoolSpec(self.final_expand_channels, res))
        specs.append(
            ConvSpec(self.final_expand_channels, self.feature_mix_channels, 1, 1, 1, "hswish", batch_norm=False)
        )
        specs.append(LinearSpec(self.feature_mix_channels, self.num_classes, self.dropout))
        return tuple(specs)

    def layer_choices(
        self, resolution: int
    ) -> tuple[tuple[LayerSpec, ...], dict[tuple[int, int, int | float], LayerSpec]]:
        """Every layer any subnet at ``resolution`` can run.

        Returns the layers every subnet runs (stem, fixed block, head) and, for each
        ``(slot, kernel_size, expand_ratio)``, the block that slot runs with those genes.
        A slot's layer does not depend on the other slots (depth never changes a stage's
        input size), which is what makes per-layer latency tables exact in what they sum.
        """
        self._check_resolution(resolution)
        fixed: tuple[LayerSpec, ...] = ()
        blocks: dict[tuple[int, int, int | float], LayerSpec] = {}
        for kernel in self.kernel_choices:
            for expand in self.expand_choices:
                specs = self._layers(self._uniform(resolution, self.max_depth, kernel, expand))
                fixed = (*specs[:2], *specs[2 + self.num_slots :])
                for slot, spec in enumerate(specs[2 : 2 + self.num_slots]):
                    blocks[(slot, kernel, expand)] = spec
        return fixed, blocks

    def _check_resolution(self, resolution: int) -> None:
        if resolution not in self.resolutions:
            raise InvalidArchitectureError(
                f"resolution={resolution} is not allowed; choose one of {list(self.resolutions)}"
            )

    def slot_index(self, stage: int, block: int) -> int:
        return stage * self.max_depth + block

    @property
    def log10_size(self) -> float:
        return math.log10(self.size)
