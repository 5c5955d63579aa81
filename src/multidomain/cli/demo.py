"""``multidomain demo``: the paper's pipeline on the offline mini-decathlon, one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from multidomain.engine.demo import run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="offline end-to-end demo: prepare data, pretrain, adapt, evaluate, report",
        description="Build the mini-decathlon if missing, pretrain resnet26_dw on its source "
        "domain, adapt every other domain (shared pointwise frozen), evaluate on test and "
        "write report.md with plots. Re-running resumes or reuses finished stages.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    parser.add_argument(
        "--quick", action="store_true", help="tiny network, one epoch per stage (CI smoke run)"
    )
    parser.add_argument("--data", type=Path, help="mini-decathlon root (default: the recipes')")
    parser.add_argument(
        "--version", type=int, default=1, help="mini-decathlon version (1 or 2; default 1)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_demo(args.out, quick=args.quick, data_root=args.data, version=args.version)
    return 0
