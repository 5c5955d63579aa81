"""The ``multidomain`` command: one sub-command module per role, wiring only (no logic here)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import import_module

from multidomain.data.images import CorruptImageError

# Each module defines ``register(subparsers)``; the parser it adds sets ``func(args) -> int``.
_COMMAND_MODULES = ("params", "data", "score", "train", "eval", "demo", "baseline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multidomain",
        description="Learn many visual domains with one depthwise-separable network.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        import_module(f"multidomain.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except CorruptImageError as err:
        if args.verbose:
            raise
        print(
            f"multidomain {args.command}: error: {err} "
            "(train with --skip-bad to count and skip such images)",
            file=sys.stderr,
        )
        return 2
    except (ValueError, FileNotFoundError, KeyError) as err:
        # User errors: one clear line, no traceback (use -v for one).
        if args.verbose:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"multidomain {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
