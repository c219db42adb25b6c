"""Start a supernet from another one's weights: same tensors, other classes or input channels.

Every tensor must exist in both and agree in shape, except two the supernet names
(:attr:`Supernet.output_layer`, :attr:`Supernet.input_weight`):

- the classifier: the leading ``min(old, new)`` class rows are kept, any further rows keep
  their fresh initialisation;
- the input filters, between one channel and several. ``"sum"`` (default): a 1-channel net
  gives exactly the parent's response to its image repeated in every channel, and a
  several-channel net from a 1-channel parent gives the parent's response to the channel mean.
  ``"average"``: the mean filter (resp. the filter copied to each channel), i.e. those
  responses divided (resp. multiplied) by the channel count; batch norm absorbs the scale
  once statistics are recalibrated.

Resolution choices may differ freely where no weight depends on them (convolutional families).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from elasticnas.core.errors import ConfigError

INPUT_FILTER_MODES = ("sum", "average")


def inherit_weights(supernet: nn.Module, parent: Mapping[str, Tensor], *, input_filters: str = "sum",
                    reset_classifier: bool = False) -> list[str]:
    """Load ``parent`` into ``supernet`` (adapting classifier rows and input filters; keeping the
    supernet's fresh classifier when ``reset_classifier``, for classes that mean something else);
    return one line per adaptation made."""
    if input_filters not in INPUT_FILTER_MODES:
        raise ConfigError(f"input_filters={input_filters!r} is not allowed; choose one of {list(INPUT_FILTER_MODES)}")
    own = supernet.state_dict()
    absent = next((name for name in own if name not in parent), None)
    if absent is not None:
        raise ConfigError(f"the parent checkpoint has no tensor {absent!r}; it is not a supernet of "
                          f"{supernet.space.name!r} (or of its family)")
    extra = next((name for name in parent if name not in own), None)
    if extra is not None:
        raise ConfigError(f"the parent checkpoint's tensor {extra!r} has no place in {supernet.space.name!r}; "
                          f"start from a supernet of the same preset")
    output = {f"{supernet.output_layer}.weight", f"{supernet.output_layer}.bias"} if supernet.output_layer else set()
    merged, notes = {}, []
    for name, target in own.items():
        source = parent[name].to(target.dtype)
        if name in output and reset_classifier:
            merged[name] = target
            if name.endswith(".weight"):
                notes.append(f"classifier: {len(target)} class rows initialised afresh (init.reset_classifier)")
        elif source.shape == target.shape:
            merged[name] = source
        elif name in output and source.shape[1:] == target.shape[1:]:
            merged[name] = _keep_rows(source, target)
            if name.endswith(".weight"):
                kept = min(len(source), len(target))
                notes.append(f"classifier: {kept} class rows kept from the parent's {len(source)}, "
                             f"{len(target) - kept} new rows initialised afresh")
        elif name == supernet.input_weight:
            merged[name] = _adapt_input_filters(name, source, target, input_filters)
            notes.append(f"input filters: the parent's {source.shape[1]} channel(s) -> {target.shape[1]} "
                         f"by {input_filters} ({_MEANING[input_filters]})")
        else:
            raise ConfigError(f"tensor {name!r} has shape {tuple(source.shape)} in the parent but "
                              f"{tuple(target.shape)} here; only the classifier rows and the input channels may "
                              f"differ (a preset of other widths, or a weight that depends on the resolution?)")
    supernet.load_state_dict(merged)
    return notes


_MEANING = {"sum": "the parent's response to one image repeated in every channel",
            "average": "that response divided (several -> 1) or multiplied (1 -> several) by the channel count"}


def _keep_rows(source: Tensor, target: Tensor) -> Tensor:
    rows = min(len(source), len(target))
    merged = target.detach().clone()
    merged[:rows] = source[:rows]
    return merged


def _adapt_input_filters(name: str, source: Tensor, target: Tensor, mode: str) -> Tensor:
    old, new = source.shape[1], target.shape[1]
    if source.shape[0] != target.shape[0] or source.shape[2:] != target.shape[2:] or 1 not in (old, new):
        raise ConfigError(f"input weight {name!r} has shape {tuple(source.shape)} in the parent but "
                          f"{tuple(target.shape)} here; only a change between 1 channel and several is supported")
    if new == 1:
        return source.sum(1, keepdim=True) if mode == "sum" else source.mean(1, keepdim=True)
    spread = source.expand(-1, new, *source.shape[2:])
    return (spread / new if mode == "sum" else spread).contiguous()


@torch.no_grad()
def set_frozen(supernet: nn.Module, patterns: tuple[str, ...], frozen: bool) -> list[str]:
    """Freeze (or thaw) the parameters whose names match any of the shell-style ``patterns``."""
    import fnmatch

    matched = [(name, p) for name, p in supernet.named_parameters() if any(fnmatch.fnmatch(name, q) for q in patterns)]
    if patterns and not matched:
        raise ConfigError(f"init.freeze {list(patterns)} matches no parameter of {supernet.space.name!r}; "
                          f"names look like {next(iter(supernet.state_dict()))!r}")
    for _, parameter in matched:
        parameter.requires_grad_(not frozen)
    return [name for name, _ in matched]
