"""``multidomain domains list|show|remove|import|export``: a model folder's domains as products."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from multidomain.engine import model_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "domains",
        help="list, show, remove, import or export the domains of a model",
        description="Manage the domains of a model folder (or a run folder's model/). Each "
        "change rewrites the folder atomically, with its checksums; domains a change does not "
        "touch stay bit-identical. A pack carries its class names and preprocessing, and is "
        "refused by a model with another architecture or other shared weights.",
    )
    actions = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    model_help = "run folder or model folder"

    def action(name: str, help_text: str, func) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--model", "--run", dest="model", required=True, help=model_help)
        sub.set_defaults(func=func)
        return sub

    sub = action("list", "list the model's domains", run_list)
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub = action("show", "show one domain (classes, preprocessing, parameters)", run_show)
    sub.add_argument("name")
    sub = action("remove", "remove a domain from the model", run_remove)
    sub.add_argument("name")
    sub = action("import", "add the domains of one or more packs to the model", run_import)
    sub.add_argument(
        "packs",
        type=Path,
        nargs="+",
        metavar="PACK",
        help=".safetensors packs (domains export), loaded together: soft packs that mix each "
        "other's banks need to be",
    )
    sub.add_argument(
        "--as",
        dest="names",
        nargs="+",
        metavar="NAME",
        help="the domains' names in the model, one per pack (default: their own)",
    )
    sub.add_argument("--replace", action="store_true", help="overwrite a domain of that name")
    sub = action("export", "write one domain as a pack file", run_export)
    sub.add_argument("name")
    sub.add_argument("--out", required=True, type=Path, help="pack file to write (.safetensors)")
    sub = action(
        "card",
        "set a domain's class names and preprocessing from the data it was trained on "
        "(models saved before multidomain saved them)",
        run_card,
    )
    sub.add_argument("name")
    sub.add_argument("--data", required=True, help="the devkit tree the domain was trained on")


def run_list(args: argparse.Namespace) -> int:
    rows = model_folder.list_domains(args.model)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'domain':<20} {'classes':>7} {'own params':>11}  card")
    for row in rows:
        card = "classes+preprocess" if row["class_names"] and row["preprocess"] else "partial"
        card = card if row["class_names"] or row["preprocess"] else "none (older pack)"
        print(f"{row['domain']:<20} {row['num_classes']:>7} {row['own_parameters']:>11,}  {card}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    print(json.dumps(model_folder.show_domain(args.model, args.name), indent=2))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    model_folder.remove_domain(args.model, args.name)
    print(f"removed domain {args.name!r} from {model_folder.model_dir(args.model)}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    names = model_folder.import_packs(args.model, args.packs, args.names, args.replace)
    target = model_folder.model_dir(args.model)
    for pack, name in zip(args.packs, names, strict=True):
        print(f"imported {pack} as domain {name!r} into {target}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    model_folder.export_pack(args.model, args.name, args.out)
    print(f"domain {args.name!r} written to {args.out}")
    return 0


def run_card(args: argparse.Namespace) -> int:
    card = model_folder.set_card(args.model, args.name, args.data)
    print(f"domain {args.name!r}: {json.dumps(card.to_fields())}")
    return 0
