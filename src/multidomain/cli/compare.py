"""``multidomain compare``: the paper's comparison table, trained and evaluated over seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

from multidomain.cli._arguments import add_overrides, add_version
from multidomain.engine.compare import run_compare
from multidomain.engine.compare.plan import Settings
from multidomain.engine.rows import list_rows


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="train and evaluate the rows of the paper's table over seeds; compare.md/csv/json",
        description="Train every selected row of the comparison table (pretraining once per "
        "backbone and seed), evaluate on test, and write compare.md, compare.csv, compare.json "
        "and plots into --out: per-domain accuracy, mean, Decathlon score, #par, mean and "
        "spread over seeds, the research questions answered. Re-running continues an "
        "interrupted compare and never retrains a finished run.",
    )
    parser.add_argument("--out", type=Path, required=True, help="the compare's folder")
    parser.add_argument("--data", type=Path, help="mini-decathlon root (default: the recipes')")
    add_version(parser)
    parser.add_argument(
        "--methods",
        default="paper",
        help=f"paper (the ten rows), all, or a list of rows m1,m2 from {', '.join(list_rows())}",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per row (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="width 0.125, one epoch per stage (smoke run)"
    )
    add_overrides(parser, "data.batch_size=32")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings(
        args.out.resolve(), args.version, args.data, args.quick, tuple(args.overrides)
    )
    run_compare(args.methods, args.seeds, settings)
    return 0
