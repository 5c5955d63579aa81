"""``multidomain pretrained list|build``: the pretrained source weights shipped with the package."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from multidomain.cli._arguments import add_overrides
from multidomain.engine.pretrained import (
    PRETRAIN_METHOD,
    SHIPPED_PREFIX,
    build_source_weights,
    list_shipped,
    read_provenance,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrained",
        help="shipped pretrained source weights: list them, or rebuild one",
        description="The package ships each backbone pretrained on mini-decathlon version 2's "
        "source domain; a run starts from one with model.init=shipped:NAME. `build` remakes "
        "one with the documented recipe and records its provenance and checksums.",
    )
    commands = parser.add_subparsers(dest="pretrained_command", required=True, metavar="ACTION")
    listing = commands.add_parser("list", help="the shipped folders and their provenance")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)
    build = commands.add_parser("build", help="pretrain a backbone on the source domain")
    build.add_argument("--source", required=True, choices=sorted(PRETRAIN_METHOD))
    build.add_argument(
        "--method",
        help="method in place during pretraining (default: the backbone's plain one; series: "
        "the series-adapter row's source network, Rebuffi's protocol)",
    )
    build.add_argument("--version", type=int, default=2, help="mini-decathlon version")
    build.add_argument("--data", type=Path, help="mini-decathlon root (default: the recipes')")
    build.add_argument("--out", type=Path, required=True, help="folder for the run and result")
    build.add_argument("--threads", type=int, default=1, help="torch threads (recorded; default 1)")
    add_overrides(build, "optim.epochs=3")
    build.set_defaults(func=run_build)


def run_list(args: argparse.Namespace) -> int:
    entries = {SHIPPED_PREFIX + name: read_provenance(name) for name in list_shipped()}
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for name, provenance in entries.items():
        print(
            f"{name}: {provenance['recipe']} {' '.join(provenance['overrides'])}; source "
            f"validation {provenance['source_validation']}; made {provenance['made']} with "
            f"torch {provenance['torch']}, {provenance['threads']} threads, {provenance['cpu']}"
        )
    return 0


def run_build(args: argparse.Namespace) -> int:
    provenance = build_source_weights(
        args.version, args.source, args.out, args.data, args.threads, args.overrides, args.method
    )
    print(json.dumps(provenance, indent=2))
    return 0
