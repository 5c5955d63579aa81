"""``multidomain add-domain``: train one new domain on top of a run, into a new run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from multidomain.cli._arguments import add_overrides
from multidomain.engine.add_domain import add_domain_config
from multidomain.engine.train import run_training


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "add-domain",
        help="add a domain to a trained model (trains only what the new domain owns)",
        description="Adapt the model of --run to one more domain of the devkit tree --data: "
        "only the new domain's own parameters train (its depthwise filters, BN and head under "
        "the paper's method), so the model written to --out keeps every old domain "
        "bit-identical.",
    )
    parser.add_argument("--run", required=True, type=Path, help="run folder or model folder")
    parser.add_argument("--data", required=True, type=Path, help="devkit tree with the domain")
    parser.add_argument("--domain", required=True, help="the domain to add (a domain of --data)")
    parser.add_argument(
        "--init-from", help="a domain of the model whose layers seed the new one (default: first)"
    )
    parser.add_argument(
        "--config", help="adapt recipe (YAML or shipped name; default: mini/ or decathlon/adapt)"
    )
    add_overrides(parser, "optim.epochs=3")
    parser.add_argument("--out", required=True, type=Path, help="new run folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = add_domain_config(
        args.run, args.data, args.domain, args.init_from, args.config, args.overrides
    )
    model_dir = run_training(config, args.out)
    if model_dir is None:
        print(
            f"stopped early by run.max_steps: continue with `multidomain train --out "
            f"{args.out} --resume`"
        )
    else:
        print(f"model with domain {args.domain!r} written to {model_dir}")
    return 0
