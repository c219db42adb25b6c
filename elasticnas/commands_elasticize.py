"""The ``elasticize`` command: a user's own model (an import path) made an elastic supernet."""

from __future__ import annotations

import argparse
from pathlib import Path

from elasticnas.command_registry import command
from elasticnas.commands_train import float_list, int_list
from elasticnas.core.errors import ConfigError
from elasticnas.core.run_layout import CONFIG, EXPLAIN_CSV

EXPLAIN_COLUMNS = ("dimension", "name", "size", "choices", "detail")  # detail: why fixed, or the blocks


@command("elasticize", "make your own PyTorch model an elastic supernet (its largest subnet is the model)",
         "elasticnas elasticize mypackage.models:build --input-shape 3,32,32 --explain --out runs/mine")
def _elasticize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODULE:CALLABLE", help="a function or class returning the nn.Module")
    parser.add_argument("--arg", nargs="*", default=[], metavar="KEY=VALUE",
                        help="keyword arguments of the callable (values read as YAML, e.g. num_classes=10)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="weights to load first: safetensors or a weights-only torch file")
    parser.add_argument("--input-shape", type=int_list, required=True, metavar="C,H,W",
                        help="one input's shape without the batch, e.g. 3,224,224 (or 128 for 128 token ids)")
    parser.add_argument("--input-dtype", default="float32", choices=("float32", "int64"),
                        help="int64 for token ids")
    parser.add_argument("--width", type=float_list, default=(0.5, 0.75, 1.0), metavar="F,F,...",
                        help="width fractions of each channel group (must include 1)")
    parser.add_argument("--no-width", action="store_true", help="keep every width")
    parser.add_argument("--no-depth", action="store_true", help="keep every residual block")
    parser.add_argument("--no-kernel", action="store_true", help="keep every kernel size")
    parser.add_argument("--resolutions", type=int_list, default=None,
                        help="input sizes to search (default: the input's, 7/8 and 3/4 of it, where the model runs)")
    parser.add_argument("--leaf", action="append", default=[], metavar="MODULE:CLASS",
                        help="a module class to keep whole instead of tracing into it (repeatable)")
    parser.add_argument("--explain", action="store_true", help="print every group, stage and kernel, elastic or "
                        "fixed, and why")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"a new run folder (config.yaml, supernet.safetensors, {EXPLAIN_CSV}) that measure, "
                             f"export and train --init read")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="the run's config (the default experiment's otherwise), e.g. data.name=cifar10")
    parser.set_defaults(run=_run_elasticize)


def _keyword_arguments(pairs: list[str]) -> dict:
    import yaml

    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"--arg takes KEY=VALUE with a Python name as KEY, but got {pair!r}")
        kwargs[key] = yaml.safe_load(value)
    return kwargs


def _run_elasticize(args: argparse.Namespace) -> None:
    import pandas as pd
    import torch

    from elasticnas.supernet.families.graph import elasticize
    from elasticnas.supernet.families.graph.elasticize import example_like
    from elasticnas.supernet.families.graph.source import build_model, import_object

    if not args.input_shape or min(args.input_shape) < 1:
        raise ConfigError(f"--input-shape takes positive sizes such as 3,224,224, but got {list(args.input_shape)}")
    if args.out is not None and args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise ConfigError(f"--out {args.out} exists and is not an empty folder; choose a new folder")
    config = _run_config(args.set) if args.out is not None else None  # checked before the model is traced
    kwargs = _keyword_arguments(args.arg)
    leaves = [import_object(leaf) for leaf in args.leaf]
    model = build_model(args.model, kwargs)
    sha = _load_weights(model, args.weights) if args.weights is not None else None
    example = example_like(args.input_shape, args.input_dtype)
    net = elasticize(model, example, width=None if args.no_width else args.width, depth=not args.no_depth,
                     kernel=not args.no_kernel, resolutions=args.resolutions, leaves=leaves, source=args.model,
                     source_args=kwargs, weights_sha256=sha).eval()
    with torch.no_grad():
        gap = (net(example, net.space.max()) - model.eval()(example)).abs().max().item()
    table = pd.DataFrame(net.report, columns=EXPLAIN_COLUMNS)
    if args.explain:
        print(table.to_string(index=False))
    space = net.space
    print(f"{space.name}: {len(space.widths)} elastic widths, {len(space.depths)} stages of droppable blocks, "
          f"{len(space.kernels)} elastic kernels, resolutions {list(space.resolutions)}; {space.size:,} subnets; "
          f"the largest subnet differs from the model by {gap:.3g} at most (channel re-ordering's float32 sums)")
    if args.out is not None:
        _write(args.out, net, table, config)
        print(f"run folder: {args.out} (config.yaml, supernet.safetensors, {EXPLAIN_CSV}); next: elasticnas train "
              f"{args.out / CONFIG} --init {args.out} --out RUN, or elasticnas measure {args.out}")


def _load_weights(model, path: Path) -> str:
    from elasticnas.parents import file_sha256, read_weights

    state = read_weights(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = " ".join(str(error).split())[:300]
        raise ConfigError(f"{path} does not fit the model: {first}") from None
    return file_sha256(path)


def _run_config(overrides: list[str]):
    from dataclasses import replace

    from elasticnas.experiment import DEFAULT_CONFIG, load_experiment

    config = load_experiment(DEFAULT_CONFIG, overrides)
    return replace(config, init=replace(config.init, zero_residual_norms=False))  # the model's own weights stay


def _write(out: Path, net, table, config) -> None:
    """A run folder like an imported one (written whole or not at all): ``measure``, ``export`` and
    ``train --init`` read it."""
    from dataclasses import replace

    from elasticnas.experiment import SupernetConfig
    from elasticnas.importing import write_run_whole

    space = net.space
    config = replace(config, supernet=SupernetConfig(name=space.name, num_classes=space.num_classes,
                                                     in_channels=space.in_channels, space=space.to_config()))
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    write_run_whole(out, config, state, {"space_fingerprint": space.fingerprint},
                    {EXPLAIN_CSV: table.to_csv(index=False)})
