"""The registry of ``elasticnas`` subcommands: each ``commands_*`` module registers its own with
:func:`command`; :mod:`elasticnas.cli` builds the parser from it and runs one. (A module of its
own so that the command modules and the command line do not import each other.)"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from elasticnas.core.errors import ElasticNASError

COMMANDS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {}
# The folder each writing command locks (core/locking.py), and whether it may create it.
WRITES: dict[str, tuple[Callable[[argparse.Namespace], Path], bool]] = {}


def command(name: str, help: str, example: str, writes: Callable[[argparse.Namespace], Path | list] | None = None,
            creates: bool = False):
    """Register a subcommand: the decorated function adds its arguments and sets ``run``;
    ``writes(args)`` names the folder it writes (or a list of ``(folder, may_create)``), held by
    one such command at a time."""

    def decorate(add_arguments):
        COMMANDS[name] = (help, example, add_arguments)
        if writes is not None:
            WRITES[name] = (writes, creates)
        return add_arguments

    return decorate


def out_arg(args: argparse.Namespace) -> Path:
    return args.out


def run_folder_arg(args: argparse.Namespace) -> Path:
    return args.run_folder


class UsageError(ElasticNASError):
    """A command line argparse refused (unknown command, missing or invalid argument)."""
