"""``multidomain data prepare-offline`` and ``multidomain data check``: wiring only."""

from __future__ import annotations

import argparse
import time

from multidomain.data.check import check_tree
from multidomain.data.offline import CLI_VERSION
from multidomain.data.offline.builder import prepare_offline
from multidomain.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="build or validate devkit-format data trees")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    prepare = commands.add_parser(
        "prepare-offline", help="build the mini-decathlon from images shipped in packages"
    )
    prepare.add_argument("--out", required=True, help="root of the devkit tree to write")
    prepare.add_argument("--image-size", type=int, default=72, help="image side (default 72)")
    prepare.add_argument("--seed", type=int, default=0, help="fixes every random choice")
    prepare.add_argument(
        "--version",
        type=int,
        default=CLI_VERSION,
        help=f"mini-decathlon version (1: source animals; 2: source emoji, built like the "
        f"Decathlon; default {CLI_VERSION})",
    )
    prepare.add_argument(
        "--max-per-class", type=int, default=None, help="cap images per class (small builds)"
    )
    prepare.add_argument("--domains", nargs="+", default=None, help="only these domains")
    prepare.add_argument("--force", action="store_true", help="rebuild a complete tree")
    prepare.set_defaults(func=_prepare)

    check = commands.add_parser("check", help="validate a devkit tree, one line per problem")
    check.add_argument("--root", required=True, help="devkit root (holds annotations/, data/)")
    check.add_argument("--domains", nargs="+", default=None, help="default: every domain found")
    check.set_defaults(func=_check)


def _prepare(args: argparse.Namespace) -> int:
    if args.image_size < 8:
        raise ConfigError(f"--image-size {args.image_size} is too small: use at least 8")
    start = time.perf_counter()
    out = prepare_offline(
        args.out,
        image_size=args.image_size,
        version=args.version,
        seed=args.seed,
        max_per_class=args.max_per_class,
        domains=args.domains,
        force=args.force,
    )
    seconds = time.perf_counter() - start
    print(f"mini-decathlon ready in {out} (version {args.version}, {seconds:.1f} s)")
    return 0


def _check(args: argparse.Namespace) -> int:
    report = check_tree(args.root, args.domains)
    print(f"{'domain':<16}{'train':>8}{'val':>8}{'test':>8}")
    for domain, counts in report.counts.items():
        print(f"{domain:<16}{counts['train']:>8}{counts['val']:>8}{counts['test']:>8}")
    for line in report.infos:
        print(f"info: {line}")
    for line in report.problems:
        print(f"problem: {line}")
    print(f"{len(report.problems)} problem(s), {len(report.infos)} info line(s)")
    return 0 if report.ok else 1
