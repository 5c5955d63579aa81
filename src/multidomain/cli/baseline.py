"""``multidomain baseline``: measure the mini-decathlon's score baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from multidomain.cli._arguments import add_version
from multidomain.engine.baseline import measure_baselines


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "baseline",
        help="measure the mini-decathlon's score baselines (every parameter fine-tuned)",
        description="Start from --pretrained, the recipe's shipped pretrained weights, or a "
        "pretraining here; fine-tune every parameter per domain once per seed, evaluate on "
        "test; writes the mean accuracies into the data root's benchmark.json and prints the "
        "entry for the shipped constants.",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/baseline"), help="run folder")
    parser.add_argument("--data", type=Path, help="mini-decathlon root (default: the recipes')")
    parser.add_argument(
        "--pretrained", help="start from this pretraining run or model folder, or shipped:NAME"
    )
    add_version(parser)
    parser.add_argument(
        "--seeds", type=int, default=1, help="fine-tuning runs (seeds 0..N-1) to average"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    entry = measure_baselines(args.out, args.data, args.pretrained, args.version, args.seeds)
    print(json.dumps(entry, indent=2))
    return 0
