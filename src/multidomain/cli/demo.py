"""``multidomain demo``: the paper's pipeline on the offline mini-decathlon, one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from multidomain.cli._arguments import add_version
from multidomain.engine.demo import run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="offline end-to-end demo: prepare data, pretrain, adapt, evaluate, report",
        description="Build the mini-decathlon if missing, pretrain resnet26_dw on its source "
        "domain (version 2: start from the shipped pretrained weights instead), adapt every "
        "other domain (shared pointwise frozen), evaluate on test and write report.md with "
        "plots. Re-running resumes or reuses finished stages.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    parser.add_argument(
        "--quick", action="store_true", help="tiny network, one epoch per stage (CI smoke run)"
    )
    parser.add_argument("--data", type=Path, help="mini-decathlon root (default: the recipes')")
    add_version(parser)
    parser.add_argument(
        "--pretrain",
        action="store_true",
        help="pretrain the source domain here instead of starting from the package's shipped "
        "pretrained weights (version 2; `multidomain pretrained list`)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_demo(
        args.out,
        quick=args.quick,
        data_root=args.data,
        version=args.version,
        pretrain=args.pretrain,
    )
    return 0
