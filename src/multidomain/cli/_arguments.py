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
