"""``multidomain predict``: classify image files, each with its domain's own preprocessing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from multidomain.engine.distributed import DistInfo, resolve_device
from multidomain.engine.model_folder import model_dir
from multidomain.engine.predict import Request, predict, read_list
from multidomain.errors import ConfigError
from multidomain.models.packs import load_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify images with a domain of a model (or a CSV list of image,domain)",
        description="Predict the classes of images: IMAGE... with --domain, or --list FILE.csv "
        "(rows image,domain; relative paths from the CSV's folder), where images of many "
        "domains share batches. Unreadable images are reported by name, the others predicted, "
        "and the command then exits with code 1.",
    )
    parser.add_argument("--run", required=True, type=Path, help="run folder or model folder")
    parser.add_argument("--domain", help="the domain of the IMAGE arguments")
    parser.add_argument("images", nargs="*", type=Path, metavar="IMAGE")
    parser.add_argument("--list", type=Path, help="CSV file of rows image,domain")
    parser.add_argument("--topk", type=int, default=5, help="classes shown per image")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--json", action="store_true", help="print JSON (one list)")
    parser.set_defaults(func=run)


def _requests(args: argparse.Namespace) -> list[Request]:
    if args.list is not None and (args.images or args.domain):
        raise ConfigError("give either --list FILE.csv or --domain NAME IMAGE..., not both")
    if args.list is not None:
        return read_list(args.list)
    if not args.images or not args.domain:
        raise ConfigError("give --domain NAME and one or more IMAGE files, or --list FILE.csv")
    return [Request(image, args.domain) for image in args.images]


def run(args: argparse.Namespace) -> int:
    if args.topk < 1 or args.batch_size < 1:
        raise ConfigError(
            f"--topk and --batch-size must be >= 1, got {args.topk}, {args.batch_size}"
        )
    requests = _requests(args)
    model = load_model(model_dir(args.run))
    device = resolve_device(args.device, DistInfo())
    results = predict(model.to(device), requests, args.topk, args.batch_size, device=device)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            shown = "  ".join(f"{name} {p:.3f}" for name, p in r.top) if r.error is None else "-"
            print(f"{r.image}\t{r.domain}\t{shown}")
    failed = [r for r in results if r.error is not None]
    for r in failed:
        print(f"multidomain predict: error: {r.error}", file=sys.stderr)
    if failed:
        print(
            f"multidomain predict: {len(failed)} of {len(results)} images could not be read",
            file=sys.stderr,
        )
    return 1 if failed else 0
