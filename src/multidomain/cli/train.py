"""``multidomain train``: run a recipe from a YAML config (plus ``--set`` overrides)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from multidomain.cli._arguments import add_overrides
from multidomain.engine.config import load_config
from multidomain.engine.recipes import resolve_config_path
from multidomain.engine.run_dir import CONFIG_FILE, load_run_config
from multidomain.engine.train import run_training


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a recipe (pretrain, adapt, joint) from a YAML config",
        description="Train from a YAML config; the resolved config is written into the run "
        "folder, checkpoints are crash-safe, and --resume continues exactly where it stopped.",
    )
    parser.add_argument(
        "--config",
        help="YAML file, or a shipped recipe name such as mini/pretrain (see configs/)",
    )
    add_overrides(parser, "optim.lr=0.01")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip (and count) undecodable images instead of stopping on the first one "
        "(same as --set data.skip_bad=true)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = None
    if args.skip_bad:
        args.overrides = [*args.overrides, "data.skip_bad=true"]
    resumable = (args.out / CONFIG_FILE).is_file()
    if (args.config or args.overrides) and (resumable or not args.resume):
        if args.resume and not args.config:  # --resume --set KEY=VALUE: change a saved setting
            config = load_run_config(args.out, args.overrides)
        else:
            path = resolve_config_path(args.config) if args.config else None
            config = load_config(path, args.overrides)
    model_dir = run_training(config, args.out, resume=args.resume)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    if model_dir is None:
        print(
            f"stopped early by run.max_steps: no model yet; continue with --resume --out {args.out}"
        )
    else:
        print(f"model written to {model_dir}")
    return 0
