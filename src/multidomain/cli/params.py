"""``multidomain params``: the parameter table of a multi-domain model."""

from __future__ import annotations

import argparse
import json

import torch

from multidomain.domains import parse_domains
from multidomain.metrics.params import count_parameters, format_report
from multidomain.models import create_model, list_models
from multidomain.models.methods import list_methods


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "params",
        help="parameter accounting (shared, per domain, heads, relative size)",
        description="Print shared / per-domain / head parameter counts and the size relative "
        "to one ResNet-26 (the Decathlon tables' #par column).",
    )
    parser.add_argument("--model", default="resnet26_dw", choices=list_models())
    parser.add_argument(
        "--domains", default="decathlon", help="'decathlon' or a list like svhn:10,dtd:47"
    )
    parser.add_argument(
        "--method",
        "--share",
        dest="method",
        choices=list_methods(),
        help="method (how domains share the network; default: the model's); --share is its "
        "earlier name",
    )
    parser.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    parser.add_argument(
        "--shared-last-pointwise",
        action="store_true",
        help="with --method pointwise: share the last pointwise conv too (default: per "
        "domain, as the official code)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    method_options = {"own_last_pointwise": False} if args.shared_last_pointwise else {}
    with torch.device("meta"):  # shapes only, nothing allocated
        model = create_model(
            args.model,
            parse_domains(args.domains),
            args.method,
            width=args.width,
            method_options=method_options,
        )
    report = count_parameters(model)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0
