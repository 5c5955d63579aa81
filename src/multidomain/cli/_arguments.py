"""Arguments that several sub-commands take, declared once."""

from __future__ import annotations

import argparse


def add_overrides(parser: argparse.ArgumentParser, example: str = "optim.lr=0.01") -> None:
    """``--set KEY=VALUE`` (repeatable), collected in ``args.overrides``."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {example} (repeatable)",
    )


def add_version(parser: argparse.ArgumentParser) -> None:
    """``--version N``: the mini-decathlon version (default: the command line's, version 2)."""
    from multidomain.data.offline import CLI_VERSION

    parser.add_argument(
        "--version",
        type=int,
        default=CLI_VERSION,
        help=f"mini-decathlon version (1 or 2; default {CLI_VERSION})",
    )
