"""Save and load a model as a shared part plus one small file per domain (safetensors + JSON).

Layout written by :func:`save_model`::

    DIR/config.json              the ModelConfig
    DIR/shared.safetensors       every tensor no domain owns
    DIR/domains/<name>.safetensors   one domain's tensors ("domain pack")

A domain pack's keys do not contain the domain's name (``stages.0.0.bn1.weight``), so a pack can be
loaded under another name. Its metadata records the architecture, class count and dropout, and
loading checks names and shapes strictly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from multidomain.io import atomic_path, read_json, write_json
from multidomain.models._registry import build_model
from multidomain.models.base import MultiDomainNet
from multidomain.models.config import ModelConfig

DOMAIN_FORMAT = "multidomain.domain-pack/1"
SHARED_FORMAT = "multidomain.shared/1"


def domain_state_dict(model: MultiDomainNet, domain: str, keep_vars: bool = False) -> dict:
    """``domain``'s tensors, keyed by their path with the domain's name left out."""
    model._check_domain(domain)
    state = {}
    for path, container in model.per_domain_modules():
        for key, value in container[domain].state_dict(keep_vars=keep_vars).items():
            state[f"{path}.{key}"] = value
    return state


def shared_state_dict(model: MultiDomainNet, keep_vars: bool = False) -> dict:
    """Every tensor of the model that no domain owns."""
    prefixes = tuple(f"{path}." for path, _ in model.per_domain_modules())
    return {
        key: value
        for key, value in model.state_dict(keep_vars=keep_vars).items()
        if not key.startswith(prefixes)
    }


def save_domain(model: MultiDomainNet, domain: str, path: str | os.PathLike) -> None:
    """Write ``domain``'s pack (atomically)."""
    model._check_domain(domain)
    metadata = {
        "format": DOMAIN_FORMAT,
        "architecture": json.dumps(model.config.architecture(), sort_keys=True),
        "domain": domain,
        "num_classes": str(model.domains[domain]),
        "dropout": str(model.config.dropout.get(domain, 0.0)),
    }
    _save(domain_state_dict(model, domain), path, metadata)


def save_shared(model: MultiDomainNet, path: str | os.PathLike) -> None:
    metadata = {
        "format": SHARED_FORMAT,
        "architecture": json.dumps(model.config.architecture(), sort_keys=True),
    }
    _save(shared_state_dict(model), path, metadata)


def load_domain(model: MultiDomainNet, path: str | os.PathLike, name: str | None = None) -> str:
    """Load a domain pack into ``model`` as ``name`` (default: the name it was saved under).

    A new name adds the domain; an existing one must have the pack's class count.

    Returns:
        The domain's name in the model.
    """
    tensors, metadata = _load(path, DOMAIN_FORMAT)
    _check_architecture(model, metadata, path)
    name = name or metadata["domain"]
    num_classes = int(metadata["num_classes"])
    added = name not in model.domains
    if added:
        model.add_domain(name, num_classes, dropout=float(metadata.get("dropout", 0.0)))
    elif model.domains[name] != num_classes:
        raise ValueError(
            f"wrong class count: {path} holds a {num_classes}-class head but the model's domain "
            f"{name!r} has {model.domains[name]} classes; load it under another name"
        )
    try:
        _copy_strict(domain_state_dict(model, name, keep_vars=True), tensors, path)
    except ValueError:
        if added:
            model.remove_domain(name)
        raise
    return name


def load_shared(model: MultiDomainNet, path: str | os.PathLike) -> None:
    tensors, metadata = _load(path, SHARED_FORMAT)
    _check_architecture(model, metadata, path)
    _copy_strict(shared_state_dict(model, keep_vars=True), tensors, path)


def save_model(model: MultiDomainNet, directory: str | os.PathLike) -> None:
    """Write config, shared part and every domain's pack into ``directory``."""
    directory = Path(directory)
    save_shared(model, directory / "shared.safetensors")
    for domain in model.domains:
        save_domain(model, domain, directory / "domains" / f"{domain}.safetensors")
    write_json(directory / "config.json", model.config.to_dict())


def load_model(directory: str | os.PathLike) -> MultiDomainNet:
    """Rebuild a model saved by :func:`save_model`."""
    directory = Path(directory)
    config = ModelConfig.from_dict(read_json(directory / "config.json", "model config"))
    model = build_model(config)
    load_shared(model, directory / "shared.safetensors")
    for domain in config.domains:
        load_domain(model, directory / "domains" / f"{domain}.safetensors", domain)
    return model


def _save(state: dict, path: str | os.PathLike, metadata: dict[str, str]) -> None:
    tensors = {key: value.detach().contiguous() for key, value in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _load(path: str | os.PathLike, expected_format: str) -> tuple[dict, dict[str, str]]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    if metadata.get("format") != expected_format:
        raise ValueError(
            f"{path} is a {metadata.get('format', 'foreign')!r} file, expected {expected_format!r}"
        )
    return tensors, metadata


def _check_architecture(model: MultiDomainNet, metadata: dict[str, str], path) -> None:
    saved = json.loads(metadata["architecture"])
    if saved != model.config.architecture():
        raise ValueError(
            f"wrong architecture: {path} was saved from {saved}, "
            f"but the model is {model.config.architecture()}"
        )


@torch.no_grad()
def _copy_strict(targets: dict, tensors: dict, path) -> None:
    missing = sorted(set(targets) - set(tensors))
    unexpected = sorted(set(tensors) - set(targets))
    wrong_shape = [
        f"{key}: file {tuple(tensors[key].shape)} vs model {tuple(targets[key].shape)}"
        for key in sorted(set(targets) & set(tensors))
        if tensors[key].shape != targets[key].shape
    ]
    problems = (
        [f"missing {k}" for k in missing[:5]]
        + [f"unexpected {k}" for k in unexpected[:5]]
        + wrong_shape[:5]
    )
    if problems:
        total = len(missing) + len(unexpected) + len(wrong_shape)
        raise ValueError(
            f"{path} does not match the model ({total} problems): " + "; ".join(problems)
        )
    for key, target in targets.items():
        target.copy_(tensors[key])
