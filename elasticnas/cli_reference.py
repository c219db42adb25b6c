"""The command-line reference of the docs site, generated from the parser itself so that it
cannot drift from what ``elasticnas --help`` says (docs/hooks.py adds it to the site as cli.md)."""

from __future__ import annotations

import argparse
import os
from unittest.mock import patch

from elasticnas.cli import build_parser

HELP_WIDTH = 100  # columns argparse wraps the help at: fixed, so the page does not depend on the terminal


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def cli_markdown() -> str:
    """One page: the top-level usage, a table of the commands, then each command's ``--help``."""
    with patch.dict(os.environ, {"COLUMNS": str(HELP_WIDTH)}):  # restored afterwards, as it was
        parser = build_parser()
        commands = _subcommands(parser)
        lines = ["# Command line", "",
                 "Generated from the parser (`elasticnas COMMAND --help` prints the same).", "",
                 "```text", parser.format_help().rstrip(), "```", "",
                 "| command | what it does |", "| --- | --- |"]
        lines += [f"| [`{name}`](#{name}) | {sub.description} |" for name, sub in commands.items()]
        for name, sub in commands.items():
            lines += ["", f"## {name}", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(lines) + "\n"
