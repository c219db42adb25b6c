"""The ``elasticnas`` command line.

User errors print one line and exit with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from elasticnas.command_registry import COMMANDS, WRITES, UsageError
from elasticnas.core.errors import ElasticNASError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line through main's error path instead of usage + exit
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    from elasticnas import (  # noqa: F401  (their decorators register the commands)
        commands_deploy,
        commands_elasticize,
        commands_text,
        commands_train,
    )

    parser = _Parser(prog="elasticnas", description="Train once, predict, search, export.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, example, add_arguments) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text, epilog=f"example:\n  {example}",
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--debug", action="store_true", help="show tracebacks of errors")
        add_arguments(sub)
    return parser


def _writer_lock(args: argparse.Namespace, argv: Sequence[str]):
    import os
    from contextlib import ExitStack, nullcontext

    from elasticnas.core.locking import exclusive_writer

    if args.command not in WRITES or os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 writes
        return nullcontext()
    from elasticnas.core.run_layout import CONFIG

    folders, creates = WRITES[args.command]
    folders = folders(args)
    stack = ExitStack()
    try:
        for folder, create in folders if isinstance(folders, list) else [(folders, creates)]:
            if not create and not (Path(folder) / CONFIG).is_file():
                continue  # not a run: the command refuses it, and nothing is written there, not even a lock
            stack.enter_context(exclusive_writer(folder, " ".join(["elasticnas", *argv]), create=create))
    except BaseException:
        stack.close()
        raise
    return stack


def _one_line(text: str) -> str:
    """User text (a key, a path) may hold line breaks or other control characters: show them escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(text.strip().split("\n")))


def _warning_line(command: str):
    """Warnings the user should see, formatted as one line each: no source file, line or code.
    (The format, not the display, is replaced, so whoever records warnings still gets them.)"""

    def one_line(message, category, filename, lineno, line=None) -> str:
        return f"elasticnas {command}: warning: {_one_line(str(message))}\n"

    return one_line


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        if "--debug" in argv:
            raise
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return 2
    from elasticnas.supernet.training import TrainingInterrupted

    try:
        with _writer_lock(args, argv), warnings.catch_warnings():
            warnings.formatwarning = _warning_line(args.command)
            args.run(args)
    except TrainingInterrupted as stop:
        print(f"elasticnas {args.command}: {stop}", file=sys.stderr)
        return 130
    except (ElasticNASError, FileNotFoundError, PermissionError) as error:
        if args.debug:
            raise
        print(f"elasticnas {args.command}: error: {_one_line(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"elasticnas {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

