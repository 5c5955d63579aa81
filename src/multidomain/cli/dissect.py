"""``multidomain dissect``: network dissection of a run's depthwise and pointwise units
(PAPER.md section 8, the paper's RQ4); wiring only."""

from __future__ import annotations

import argparse
from pathlib import Path

from multidomain.engine.dissect_run import dissect_run
from multidomain.interpret.dissect import DissectOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dissect",
        help="network dissection: what depthwise and pointwise units detect (RQ4)",
        description="Dissect every depthwise and pointwise output of RUN/model for one domain "
        "on a probe set with concept masks; writes dissect.md, dissect.csv and plots to --out.",
    )
    parser.add_argument("--run", required=True, type=Path, help="run folder")
    parser.add_argument("--domain", required=True, help="the domain whose layers are dissected")
    parser.add_argument(
        "--probe", default="offline", help="'offline' (built here) or a Broden folder"
    )
    parser.add_argument("--layers", nargs="+", help="layer names or patterns ('stages.2.*')")
    parser.add_argument(
        "--controls", action="store_true", help="also the random-init and rotated-basis controls"
    )
    parser.add_argument("--out", required=True, type=Path, help="report folder")
    parser.add_argument("--data", type=Path, help="devkit root (default: the run's data.root)")
    parser.add_argument("--images", type=int, default=2000, help="probe images (at most)")
    parser.add_argument("--image-size", type=int, default=72, help="input size in pixels")
    parser.add_argument("--iou-threshold", type=float, default=0.04)
    parser.add_argument("--quantile", type=float, default=0.005, help="top fraction per unit")
    parser.add_argument("--replicates", type=int, default=20, help="bootstrap replicates")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = DissectOptions(
        quantile=args.quantile,
        iou_threshold=args.iou_threshold,
        batch_size=args.batch_size,
        replicates=args.replicates,
        seed=args.seed,
    )
    written = dissect_run(
        args.run,
        args.domain,
        args.probe,
        args.out,
        args.layers,
        args.controls,
        args.data,
        args.images,
        args.image_size,
        options,
    )
    print("written: " + ", ".join(str(p) for p in written))
    return 0
