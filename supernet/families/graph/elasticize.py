"""``elasticize``: any image model becomes a supernet whose largest subnet is the model itself.

The model is captured as a graph, its channel groups, residual stages and large kernels are
found (``analysis.py``), the ones that can shrink become genes of a :class:`GraphSpace`, and
the weights are re-ordered once, most important channels first, without changing the function.
Whatever cannot be proven safe to shrink stays fixed, and :func:`explain` says why.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, fx, nn

from elasticnas.core.errors import ConfigError
from elasticnas.supernet.families.graph.analysis import analyse
from elasticnas.supernet.families.graph.attention import split_attention_modules
from elasticnas.supernet.families.graph.capture import GraphCaptureError, capture, node_shapes
from elasticnas.supernet.families.graph.derive import derive_space
from elasticnas.supernet.families.graph.network import GraphSupernet

DEFAULT_WIDTHS = (0.5, 0.75, 1.0)  # fractions of each group's channels


@dataclass(frozen=True)
class ElasticOptions:
    """What ``elasticize`` may make elastic (each dimension can be switched off)."""

    width: tuple[float, ...] | None = DEFAULT_WIDTHS  # fractions of a group's channels; None: widths stay
    depth: bool = True  # stages of residual blocks keep their first k blocks, k from n // 2 to n
    kernel: bool = True  # convs of kernel >= 5 may run their centred smaller odd kernels
    resolutions: tuple[int, ...] | None = None  # input sizes; None: the traced size, 7/8 and 3/4 of it

    def __post_init__(self) -> None:
        if self.width is not None:
            width = tuple(sorted({float(w) for w in self.width}))
            if not width or width[0] <= 0 or width[-1] != 1.0:
                raise ConfigError(f"width fractions must lie in (0, 1] and include 1.0, but got {list(self.width)}")
            object.__setattr__(self, "width", width)
        if self.resolutions is not None and (not self.resolutions or min(self.resolutions) < 1):
            raise ConfigError(f"resolutions must be positive sizes, but got {self.resolutions}")


def example_tensor(example_inputs) -> Tensor:
    """The one input tensor of ``example_inputs`` (a tensor, or a tuple holding one)."""
    example = example_inputs[0] if isinstance(example_inputs, (tuple, list)) and len(example_inputs) == 1 \
        else example_inputs
    if not isinstance(example, Tensor) or example.dim() < 2:
        found = list(example.shape) if isinstance(example, Tensor) else type(example_inputs).__name__
        raise ConfigError(f"example_inputs must be one tensor with a batch dimension, e.g. images (N, C, H, W) or "
                          f"token ids (N, T), but got {found}")
    return example


def is_image(example: Tensor) -> bool:
    """A float batch (N, C, H, W) with H == W: its resolution may become elastic."""
    return example.dim() == 4 and example.is_floating_point() and example.shape[2] == example.shape[3]


def output_shape(graph: fx.GraphModule, shapes: dict) -> tuple[int, ...] | None:
    """The shape of what the graph returns (None when it is not one tensor)."""
    return shapes[next(n for n in reversed(graph.graph.nodes) if n.op == "output").name]


def example_like(shape: Sequence[int], dtype: str, batch: int = 2) -> Tensor:
    """A seeded input of a recorded shape and dtype (token ids are zeros: only shapes matter to tracing)."""
    kind = getattr(torch, dtype)
    if kind.is_floating_point:
        return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0), dtype=kind)
    return torch.zeros(batch, *shape, dtype=kind)


def elasticize(model: nn.Module, example_inputs, *, width: Sequence[float] | None = DEFAULT_WIDTHS,
               depth: bool = True, kernel: bool = True, resolutions: Sequence[int] | None = None,
               importance: str | Callable[[list[Tensor]], Tensor] | None = "l1", leaves: Sequence[type] = (),
               name: str | None = None, source: str | None = None, source_args: dict | None = None,
               weights_sha256: str | None = None) -> GraphSupernet:
    """An elastic supernet of ``model`` whose largest subnet computes what ``model`` computes.

    ``example_inputs`` is an image batch ``(N, C, H, W)``. ``importance`` orders each channel
    group before widths shrink: ``"l1"`` (the L1 norm of the weights writing each channel), a
    callable given the group's producer weights (channels on dim 0) returning one score per
    channel, or None to keep the model's order. ``leaves`` are module classes to keep whole.
    ``source`` ("package.module:callable") lets a run rebuild the model from its space.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(8, 10))
        >>> net = elasticize(model, torch.randn(2, 1, 16, 16))
        >>> [gene.choices for gene in net.space.widths]
        [(4, 6, 8)]
    """
    options = ElasticOptions(tuple(width) if width is not None else None, depth, kernel,
                             tuple(resolutions) if resolutions is not None else None)
    example = example_tensor(example_inputs)
    own = copy.deepcopy(model)  # the supernet re-orders and trains its own copy
    attentions = split_attention_modules(own, leaves)
    graph = capture(own, example, leaves)
    shapes = node_shapes(graph, example)
    analysis = analyse(graph, shapes)
    output = output_shape(graph, shapes)
    if output is None:
        raise GraphCaptureError(f"{type(model).__name__} must return one tensor (e.g. logits), but its output is not "
                                f"a tensor; wrap it in a module returning the logits (e.g. model(x).logits)")
    by_resolution, dropped = _resolutions(own, graph, example, output, options, leaves)
    provenance = {"source": source, "source_args": json.dumps(source_args or {}, sort_keys=True),
                  "weights_sha256": weights_sha256,
                  "options": {**asdict(options), "example": {"shape": list(example.shape[1:]),
                                                             "dtype": str(example.dtype).removeprefix("torch.")},
                              "leaves": [f"{leaf.__module__}:{leaf.__qualname__}" for leaf in leaves]}}
    space, blocks, resized, report = derive_space(graph, analysis, by_resolution, options, name or
                                         f"graph_{type(model).__name__.lower()}", output[-1],
                                         example.shape[1] if is_image(example) else 0,
                                         provenance)
    report += [("resolution", str(r), "-", "fixed", why) for r, why in dropped]
    report += [("module", path, "-", what, why) for path, what, why in attentions]
    supernet = GraphSupernet(space, graph, blocks, resized)
    supernet.report = report
    if importance is not None:
        if not callable(importance) and importance != "l1":
            raise ConfigError(f"importance must be 'l1', a callable or None, but got {importance!r}")
        supernet.importance_fn = None if importance == "l1" else importance
        supernet.sort_channels()
    return supernet


def _resolutions(model: nn.Module, graph: fx.GraphModule, example: Tensor, output, options: ElasticOptions,
                 leaves: Sequence[type]):
    """The input sizes the captured graph serves: it runs there, gives the same output shape, and
    tracing the model at that size gives the same code (no size-dependent branch was taken)."""
    size, channels = example.shape[-1], example.shape[1]
    if not is_image(example):  # token ids, sequences, non-square images: the traced shape only
        if options.resolutions not in (None, (size,)):
            raise ConfigError(f"resolutions apply to square image inputs (N, C, H, W); this input is "
                              f"{list(example.shape)}")
        return {size: node_shapes(graph, example)}, []
    wanted = options.resolutions or tuple(sorted({size, round(size * 7 / 8), round(size * 3 / 4)}))
    by_resolution, dropped = {}, []
    for r in sorted(set(wanted)):
        image = example if r == size else example_like((channels, r, r), "float32", len(example))
        try:
            same = r == size or capture(model, image, leaves).code == graph.code
            shapes = node_shapes(graph, image)
        except Exception as error:  # the model cannot run at r (e.g. a flatten feeding a linear)
            first = " ".join(str(error).split()).split(" While executing")[0][:160]
            dropped.append((r, f"the model does not run at {r} px: {first}"))
            continue
        out = output_shape(graph, shapes)
        if not same or out != output:
            dropped.append((r, f"the model's graph or output changes at {r} px" if same is False else
                            f"the output at {r} px is {out}, not {output}"))
            continue
        by_resolution[r] = shapes
    if not by_resolution:
        raise ConfigError(f"the model runs at none of the resolutions {list(wanted)}; "
                          f"{dropped[0][1] if dropped else ''}")
    return by_resolution, dropped
