"""``multidomain convert``: a torchvision or timm network made multi-domain, and its parameter
accounting (optionally saved as a model folder)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from multidomain.convert import ConvertConfig, build_network, convert, load_network_weights
from multidomain.convert.config import METHOD_OWNS
from multidomain.domains import parse_domains
from multidomain.metrics.params import count_parameters, format_report
from multidomain.models.packs import save_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="make a torchvision/timm depthwise network multi-domain; print its accounting",
        description="Convert a depthwise network (depthwise convs, norms, layer scales and "
        "heads per domain; pointwise layers shared) and print shared / per-domain parameters.",
    )
    parser.add_argument(
        "--model",
        required=True,
        help="torchvision:NAME or timm:NAME, e.g. torchvision:mobilenet_v3_small",
    )
    parser.add_argument(
        "--domains", default="decathlon", help="'decathlon' or a list like svhn:10,dtd:47"
    )
    parser.add_argument("--method", default="pointwise", choices=sorted(METHOD_OWNS))
    parser.add_argument("--own-se", action="store_true", help="squeeze-excitation per domain")
    parser.add_argument(
        "--own-classifier-hidden",
        action="store_true",
        help="the classifier's hidden layers per domain",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        help="the network's weights (.safetensors, or a state dict read with "
        "torch.load(weights_only=True)); needs --save",
    )
    parser.add_argument("--save", type=Path, help="write the converted model into this folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.weights and not args.save:
        raise ValueError("--weights is only read to be saved: add --save DIR")
    config = ConvertConfig(
        method=args.method,
        own_se=args.own_se,
        own_classifier_hidden=args.own_classifier_hidden,
        source=args.model,
    )
    domains = parse_domains(args.domains)
    network = build_network(args.model)  # on the CPU: some builders cannot run on "meta"
    if args.weights:
        load_network_weights(network, args.weights)
    model = convert(network, domains, config)
    if args.save:
        save_model(model, args.save)
    report = count_parameters(model)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0
