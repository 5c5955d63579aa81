"""The ``multidomain`` command: one sub-command module per role, wiring only (no logic here).

Every failure passes through :mod:`multidomain.cli.boundary`: one stderr line and an exit code
from the table in :mod:`multidomain.errors` (also printed by ``multidomain --help``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from multidomain.cli.boundary import (
    EXIT_CODES_HELP,
    quit_on_closed_stdout,
    report_failure,
    stdout_closed,
)

# Each module defines ``register(subparsers)``; the parser it adds sets ``func(args) -> int``.
_COMMAND_MODULES = (
    "params",
    "convert",
    "data",
    "score",
    "train",
    "eval",
    "dissect",
    "demo",
    "baseline",
    "pretrained",
    "compare",
    "add_domain",
    "domains",
    "predict",
    "export",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multidomain",
        description="Learn many visual domains with one depthwise-separable network.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging; tracebacks of errors"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        import_module(f"multidomain.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except BrokenPipeError:  # stdout's reader has gone (``_run`` lets no other through)
        return quit_on_closed_stdout()


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(
        # torchrun: only rank 0 reports progress; the other ranks print their errors only
        level=level if os.environ.get("RANK", "0") == "0" else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    command = " ".join(filter(None, (args.command, getattr(args, "data_command", None))))
    try:
        return int(args.func(args) or 0)
    except (KeyboardInterrupt, Exception) as err:  # the boundary: one line, or a bug report
        if isinstance(err, BrokenPipeError) and stdout_closed():
            raise  # no error of the command's: main ends quietly
        return report_failure(command, err, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
