"""``multidomain params``: the parameter table of a multi-domain model."""

from __future__ import annotations

import argparse
import json

import torch

from multidomain.domains import parse_domains
from multidomain.engine.rows import get_row, is_row, list_rows
from multidomain.errors import ConfigError
from multidomain.metrics.params import count_parameters, format_report
from multidomain.models import create_model, list_models
from multidomain.models.methods import list_methods

DECATHLON_SOURCE = "imagenet12"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "params",
        help="parameter accounting (shared, per domain, heads, relative size)",
        description="Print shared / per-domain / head parameter counts and the size relative "
        "to one ResNet-26 (the Decathlon tables' #par column).",
    )
    parser.add_argument(
        "--model", choices=list_models(), help="the network (default: resnet26_dw, or the row's)"
    )
    parser.add_argument(
        "--domains", default="decathlon", help="'decathlon' or a list like svhn:10,dtd:47"
    )
    parser.add_argument(
        "--method",
        "--share",
        dest="method",
        choices=list_methods() + [r for r in list_rows() if r not in list_methods()],
        help="a method (how domains share the network; default: the model's) or a row of the "
        "comparison table (multidomain compare), whose backbone it then counts; --share is its "
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


def model_and_method(model: str | None, method: str | None) -> tuple[str, str | None]:
    """The network and method to count: a row name brings its backbone and method (a method's
    name is also the row that uses it, on that row's backbone, unless --model says another)."""
    if method is None or not is_row(method):
        return model or "resnet26_dw", method
    row = get_row(method)
    if model is not None and model != row.source:
        if method in list_methods():
            return model, method
        raise ConfigError(
            f"row {method!r} is on {row.source}, not {model}: drop --model or give a method"
        )
    return row.source, row.method


def source_first(domains: dict[str, int]) -> dict[str, int]:
    """The Decathlon's source domain (imagenet12, where pretraining happens) first, as a model
    adapted from it holds it; a soft-sharing model gives its first domain no gate."""
    if DECATHLON_SOURCE not in domains:
        return domains
    return {DECATHLON_SOURCE: domains[DECATHLON_SOURCE], **domains}


def run(args: argparse.Namespace) -> int:
    method_options = {"own_last_pointwise": False} if args.shared_last_pointwise else {}
    model_name, method = model_and_method(args.model, args.method)
    with torch.device("meta"):  # shapes only, nothing allocated
        model = create_model(
            model_name,
            source_first(parse_domains(args.domains)),
            method,
            width=args.width,
            method_options=method_options,
        )
    report = count_parameters(model)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0
