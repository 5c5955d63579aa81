"""``multidomain export``: one domain as a plain network (ONNX or a ``torch.export`` program)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from multidomain.engine.export import FORMATS, OPSET, export_domain
from multidomain.engine.model_folder import model_dir
from multidomain.models.packs import load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export one domain as a single-domain network (ONNX or torch.export .pt2)",
        description="Export one domain of a model as a plain single-domain network (domain "
        "selection folded away, BN in eval mode, dynamic batch size), checked against the "
        "multi-domain model before it is kept. Writes FILE and FILE.json (class names, "
        "preprocessing, input shape). ONNX needs the export extra: "
        "pip install 'multidomain[export]'.",
    )
    parser.add_argument("--run", required=True, type=Path, help="run folder or model folder")
    parser.add_argument("--domain", required=True)
    parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
    parser.add_argument("--out", required=True, type=Path, help="file to write (.onnx, .pt2)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("HEIGHT", "WIDTH"),
        help="input size (default: the domain's test crop)",
    )
    parser.set_defaults(func=run)


# torch's ONNX exporter logs each of its optimiser's rewrites at INFO (a hundred lines per
# network): shown with -v only.
EXPORTER_LOGGERS = ("onnxscript", "onnx_ir")


def run(args: argparse.Namespace) -> int:
    if not args.verbose:
        for name in EXPORTER_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    model = load_model(model_dir(args.run))
    size = tuple(args.size) if args.size else None
    info = export_domain(model, args.domain, args.fmt, args.out, size, args.opset)
    shape = "x".join(str(v) for v in info["input"]["shape"])
    print(
        f"domain {args.domain!r} exported to {args.out} (input {shape}), checked against "
        f"the model; description in {args.out}.json"
    )
    return 0
