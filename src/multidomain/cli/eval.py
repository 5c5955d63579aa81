"""``multidomain eval``: per-domain top-1, Decathlon score and parameters of a finished run."""

from __future__ import annotations

import argparse
from pathlib import Path

from multidomain.engine.eval_run import evaluate_run
from multidomain.engine.report import format_eval_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a run's model (table + eval.json; results.json for the test split)",
        description="Evaluate RUN_DIR/model per domain: top-1, mean, Decathlon score S against "
        "the benchmark's baselines, parameter accounting.",
    )
    parser.add_argument("--run", required=True, type=Path, help="run folder")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--data", type=Path, help="devkit root (default: the run's data.root)")
    parser.add_argument("--domains", nargs="+", help="evaluate only these domains")
    parser.add_argument(
        "--bn-reestimate",
        action="store_true",
        help="recompute each domain's BN running statistics on its training images first",
    )
    parser.add_argument("--workers", type=int, default=0, help="loader processes")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for eval.json and results.json (default: the run folder; use it when the "
        "run folder is read-only)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = args.out or args.run
    report = evaluate_run(
        args.run, args.split, args.data, args.domains, args.bn_reestimate, args.workers, out
    )
    print(format_eval_table(report))
    print(f"\nwritten: {out / 'eval.json'}", end="")
    print(f", {out / 'results.json'}" if args.split == "test" else "")
    for name in report.get("gate_maps", {}).values():
        print(f"gate heat map: {out / name}")
    return 0
