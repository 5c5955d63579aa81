"""Managing the domains of a model folder: list, show, remove, import a pack, export a pack.

A change is written as a whole new folder next to the old one (``save_model``, checksums
last), then swapped in by renames (``run_dir.replace_folder``), under the lock of the folder
that holds the model (the run folder for ``RUN/model``, so a running ``train`` and a change
never overlap). The domains a change does not touch are written back bit-identical (equal
weights give equal files).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multidomain.data.benchmark import load_benchmark
from multidomain.data.dataset import DecathlonDataset
from multidomain.engine import data_setup
from multidomain.engine.builders import resolve_model_dir
from multidomain.engine.config import DataConfig
from multidomain.engine.run_dir import MODEL_TEMP_PREFIX, replace_folder
from multidomain.errors import ConfigError, InputNotFound
from multidomain.io import make_temp_dir
from multidomain.locks import folder_lock
from multidomain.metrics.params import count_parameters
from multidomain.models import MultiDomainNet
from multidomain.models.cards import DomainCard
from multidomain.models.packs import (
    load_domains,
    load_model,
    model_fingerprint,
    save_domain,
    save_model,
)


def model_dir(path: str | os.PathLike) -> Path:
    """The model folder of a run folder or a model folder (a usage error when neither)."""
    try:
        return resolve_model_dir(path)
    except FileNotFoundError as err:
        raise InputNotFound(str(err)) from err


def check_domain(model: MultiDomainNet, name: str) -> None:
    if name not in model.domains:
        raise ConfigError(f"the model has no domain {name!r}; its domains: {list(model.domains)}")


def list_domains(path: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per domain: name, classes, own parameters, whether it has a card."""
    model = load_model(model_dir(path))
    params = count_parameters(model)
    return [
        {
            "domain": name,
            "num_classes": classes,
            "own_parameters": params.per_domain[name],
            "class_names": bool(model.card(name).classes),
            "preprocess": model.card(name).preprocess is not None,
        }
        for name, classes in model.domains.items()
    ]


def show_domain(path: str | os.PathLike, name: str) -> dict[str, Any]:
    """Everything known about one domain (its pack's metadata, as the model holds it)."""
    model = load_model(model_dir(path))
    check_domain(model, name)
    card = model.card(name)
    return {
        "domain": name,
        "num_classes": model.domains[name],
        "dropout": model.config.dropout.get(name, 0.0),
        "own_parameters": count_parameters(model).per_domain[name],
        "classes": list(card.classes),
        "preprocess": card.preprocess.to_dict() if card.preprocess else None,
        "architecture": model.config.architecture(),
        "shared_fingerprint": model_fingerprint(model),
    }


def change_model(path: str | os.PathLike, change: Callable[[MultiDomainNet], Any]) -> Any:
    """Apply ``change`` to the model of ``path`` and write the result in its place
    (atomically, see the module docstring). Returns what ``change`` returns."""
    folder = model_dir(path)
    with folder_lock(folder.parent, "folder of the model"):
        model = load_model(folder)
        result = change(model)
        tmp = make_temp_dir(folder.parent, MODEL_TEMP_PREFIX)
        try:
            save_model(model, tmp)
            replace_folder(tmp, folder, MODEL_TEMP_PREFIX)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def remove_domain(path: str | os.PathLike, name: str) -> None:
    def remove(model: MultiDomainNet) -> None:
        check_domain(model, name)
        if len(model.domains) == 1:
            raise ConfigError(f"cannot remove {name!r}: it is the model's only domain")
        model.remove_domain(name)

    change_model(path, remove)


def import_packs(
    path: str | os.PathLike,
    packs: list[str | os.PathLike],
    names: list[str] | None,
    replace: bool,
) -> list[str]:
    """Add the domains of ``packs`` together (as ``names``, default their own); returns their
    names. Loaded at once, so soft packs whose gates mix each other's banks load too."""
    if names and len(names) != len(packs):
        raise ConfigError(
            f"{len(names)} names (--as) for {len(packs)} packs: give one name per pack, or none"
        )
    for pack in packs:
        if not Path(pack).is_file():
            raise InputNotFound(
                f"pack {pack} not found: give a .safetensors file from `multidomain domains export`"
            )
    return change_model(path, lambda model: load_domains(model, packs, names, replace=replace))


def export_pack(path: str | os.PathLike, name: str, out: str | os.PathLike) -> None:
    """Write domain ``name`` of the model as a pack file ``out`` (never over an existing one)."""
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} already exists: choose another --out or remove it first")
    model = load_model(model_dir(path))
    check_domain(model, name)
    save_domain(model, name, out)


def set_card(path: str | os.PathLike, name: str, data_root: str | os.PathLike) -> DomainCard:
    """Write domain ``name``'s card (class names and preprocessing) read off the devkit tree
    ``data_root`` it was trained on: for a model saved before multidomain saved cards, whose
    domains ``predict`` and ``export`` cannot otherwise prepare images for. Returns the card."""
    root = data_setup.resolve_root(DataConfig(root=str(data_root)))
    benchmark = load_benchmark(root)
    dataset = DecathlonDataset(root, name, "train", benchmark=benchmark)
    card = data_setup.domain_card(benchmark, name, dataset)

    def set_it(model: MultiDomainNet) -> None:
        check_domain(model, name)
        if len(card.classes) != model.domains[name]:
            raise ConfigError(
                f"domain {name!r} of {root} has {len(card.classes)} classes, the model's "
                f"{model.domains[name]}: give --data the tree the domain was trained on"
            )
        model.cards[name] = card

    change_model(path, set_it)
    return card
