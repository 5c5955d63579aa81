"""Save and load a model as a shared part plus one small file per domain (safetensors + JSON).

Layout written by :func:`save_model`::

    DIR/config.json              the ModelConfig
    DIR/shared.safetensors       every tensor no domain owns
    DIR/domains/<name>.safetensors   one domain's tensors ("domain pack")

    DIR/checksums.json           SHA-256 of every file (``multidomain.io.write_checksums``)

A domain pack's keys do not contain the domain's name (``stages.0.0.bn1.weight``), so a pack can be
loaded under another name. Its metadata records the architecture, class count and dropout, the
fingerprint of the shared weights it was trained on, and the domain's card (class names and
preprocessing, ``models.cards``). Loading refuses a pack made for another architecture or other
shared weights, naming the difference, and checks names, shapes, dtypes and values (finite)
strictly, before changing anything. Packs written before fingerprints and cards existed load
unchecked on those two points.

A soft-sharing domain's pack also records the other domains' banks its gates mix, with a
fingerprint of each (``models.soft_banks``); :func:`load_domains` loads packs that mix each
other's banks together.

Files are byte-reproducible: equal weights give equal files. The metadata is one safetensors key,
``multidomain``, holding sorted JSON (safetensors writes several keys in a random order); files
written before, with one key per field, still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from multidomain.domains import validate_domain_name
from multidomain.errors import ConfigError, DataError
from multidomain.io import atomic_path, read_json, verify_checksums, write_checksums, write_json
from multidomain.models._registry import build_model
from multidomain.models.base import MultiDomainNet
from multidomain.models.cards import DomainCard, shared_fingerprint
from multidomain.models.config import ModelConfig, normalized_architecture
from multidomain.models.soft_banks import (
    BANKS_FIELD,
    align_gates,
    bank_record,
    check_bank_users,
    check_banks,
    incoming_banks,
)

DOMAIN_FORMAT = "multidomain.domain-pack/1"
SHARED_FORMAT = "multidomain.shared/1"
# The one safetensors metadata key this package writes: sorted JSON of every field.
METADATA_KEY = "multidomain"
REQUIRED_FIELDS = {
    DOMAIN_FORMAT: ("architecture", "domain", "num_classes"),
    SHARED_FORMAT: ("architecture",),
}


def domain_state_dict(model: MultiDomainNet, domain: str, keep_vars: bool = False) -> dict:
    """``domain``'s tensors, keyed by their path with the domain's name left out."""
    model._check_domain(domain)
    state = {}
    for path, container in model.per_domain_modules():
        if domain not in container:  # a method may give some domains no module here (a gate)
            continue
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


def model_fingerprint(model: MultiDomainNet) -> str:
    """The fingerprint of ``model``'s shared weights (what a domain pack is made for)."""
    return shared_fingerprint(shared_state_dict(model))


def save_domain(
    model: MultiDomainNet, domain: str, path: str | os.PathLike, fingerprint: str | None = None
) -> None:
    """Write ``domain``'s pack (atomically); ``fingerprint``: :func:`model_fingerprint`,
    computed when not given."""
    model._check_domain(domain)
    fields = {
        "format": DOMAIN_FORMAT,
        "architecture": model.config.architecture(),
        "domain": domain,
        "num_classes": model.domains[domain],
        "dropout": model.config.dropout.get(domain, 0.0),
        "shared_fingerprint": fingerprint or model_fingerprint(model),
        **model.card(domain).to_fields(),
    }
    banks = bank_record(model, domain)
    if banks is not None:  # a soft domain: the other domains' banks its gates mix
        fields[BANKS_FIELD] = banks
    _save(domain_state_dict(model, domain), path, fields)


def save_shared(model: MultiDomainNet, path: str | os.PathLike) -> None:
    """Write every tensor no domain owns (atomically)."""
    fields = {"format": SHARED_FORMAT, "architecture": model.config.architecture()}
    _save(shared_state_dict(model), path, fields)


def load_domain(
    model: MultiDomainNet,
    path: str | os.PathLike,
    name: str | None = None,
    replace: bool = False,
    fingerprint: str | None = None,
) -> str:
    """Load a domain pack into ``model`` as ``name`` (default: the name it was saved under).

    A new name adds the domain. An existing one is overwritten only when ``replace`` is True
    (and the pack has its class count): a domain's weights are never lost silently. Nothing
    changes when the pack is refused.

    ``fingerprint``: the model's :func:`model_fingerprint` (computed when not given).

    Returns:
        The domain's name in the model.

    Raises:
        ConfigError: a bad name, an existing domain without ``replace``, another architecture,
            other shared weights or another class count.
        DataError: a file that is not a domain pack, or whose tensors do not fit the model
            (names, shapes, dtypes) or are not finite.
    """
    name, tensors, fields, card = _read_checked(model, path, name, replace, fingerprint)
    if BANKS_FIELD in fields:  # packs of other methods, and earlier ones, have none
        check_banks(model, fields[BANKS_FIELD], name, path)
    check_bank_users(model, name, incoming_banks(model, tensors), {name}, path)
    _apply(model, name, tensors, fields, card, path)
    return name


def load_domains(
    model: MultiDomainNet,
    paths: list[str | os.PathLike],
    names: list[str | None] | None = None,
    replace: bool = False,
    fingerprint: str | None = None,
) -> list[str]:
    """Load several domain packs at once, as :func:`load_domain` does each.

    Needed for soft-sharing packs whose gates mix each other's banks (a cycle that no order
    of single loads satisfies): each pack's banks are checked against the banks the model
    will hold once all are loaded. Everything is checked before anything changes; a pack
    whose tensors do not fit undoes the loads before it.
    """
    fingerprint = fingerprint or model_fingerprint(model)
    names = list(names) if names is not None else [None] * len(paths)
    packs = [
        _read_checked(model, p, n, replace, fingerprint) for p, n in zip(paths, names, strict=True)
    ]
    loaded = [pack[0] for pack in packs]
    if len(set(loaded)) != len(loaded):
        raise ConfigError(f"two packs would load as the same domain: {loaded}; give other names")
    incoming = {name: incoming_banks(model, tensors) for name, tensors, _, _ in packs}
    for (name, _, fields, _), path in zip(packs, paths, strict=True):
        if BANKS_FIELD in fields:
            check_banks(model, fields[BANKS_FIELD], name, path, incoming)
        check_bank_users(model, name, incoming[name], set(loaded), path)
    undo = _Undo(model)
    try:
        for pack, path in zip(packs, paths, strict=True):
            undo.before(pack[0])
            _apply(model, *pack, path)
    except ValueError:
        undo.run()
        raise
    return loaded


class _Undo:
    """Restores the domains :func:`load_domains` added or replaced."""

    def __init__(self, model: MultiDomainNet) -> None:
        self.model, self.steps = model, []

    def before(self, name: str) -> None:
        if name not in self.model.domains:
            self.steps.append((name, None, None))
            return
        state = {k: v.detach().clone() for k, v in domain_state_dict(self.model, name).items()}
        self.steps.append((name, state, self.model.cards.get(name)))

    @torch.no_grad()
    def run(self) -> None:
        for name, state, card in reversed(self.steps):
            if state is None:
                if name in self.model.domains:
                    self.model.remove_domain(name)
                continue
            for key, target in domain_state_dict(self.model, name, keep_vars=True).items():
                target.copy_(state[key])
            self.model.cards.pop(name, None)
            if card is not None:
                self.model.cards[name] = card


def _read_checked(model: MultiDomainNet, path, name, replace, fingerprint):
    """``(name, tensors, fields, card)`` of a pack, checked against ``model`` (all but the
    banks a soft pack mixes)."""
    tensors, fields = _load(path, DOMAIN_FORMAT)
    _check_architecture(model, fields, path)
    card = _card(fields, path)
    name = validate_domain_name(fields["domain"] if name is None else name)
    if name in model.domains:
        _check_replaceable(model, name, fields["num_classes"], replace, path)
    _check_fingerprint(fields, fingerprint or model_fingerprint(model), path)
    return name, tensors, fields, card


def _apply(model: MultiDomainNet, name: str, tensors: dict, fields: dict, card, path) -> None:
    """Load a checked pack's tensors as ``name`` (a new domain is removed again on failure)."""
    added = name not in model.domains
    if added:
        model.add_domain(name, fields["num_classes"], dropout=float(fields.get("dropout", 0.0)))
    try:
        if BANKS_FIELD in fields:
            tensors = align_gates(model, tensors, fields[BANKS_FIELD], name, path)
        _copy_strict(domain_state_dict(model, name, keep_vars=True), tensors, path)
    except ValueError:
        if added:
            model.remove_domain(name)
        raise
    model.cards[name] = card


def _check_replaceable(
    model: MultiDomainNet, name: str, num_classes: int, replace: bool, path
) -> None:
    """Refuse to load over the existing domain ``name`` unless it may be overwritten."""
    if model.domains[name] != num_classes:
        raise ConfigError(
            f"wrong class count: {path} holds a {num_classes}-class head but the model's domain "
            f"{name!r} has {model.domains[name]} classes; load it under another name"
        )
    if not replace:
        raise ConfigError(
            f"the model already has a domain {name!r}, which loading {path} would overwrite: "
            "pass replace=True to overwrite it, or load the pack under another name (name=...)"
        )


def load_shared(model: MultiDomainNet, path: str | os.PathLike) -> None:
    """Load the shared part (strictly: every tensor, matching names, shapes, dtypes, finite)."""
    tensors, fields = _load(path, SHARED_FORMAT)
    _check_architecture(model, fields, path)
    _copy_strict(shared_state_dict(model, keep_vars=True), tensors, path)


def save_model(model: MultiDomainNet, directory: str | os.PathLike) -> None:
    """Write config, shared part and every domain's pack into ``directory``, then the
    checksums of its files (last, so that they describe complete files)."""
    directory = Path(directory)
    save_shared(model, directory / "shared.safetensors")
    fingerprint = model_fingerprint(model)
    for domain in model.domains:
        save_domain(model, domain, directory / "domains" / f"{domain}.safetensors", fingerprint)
    write_json(directory / "config.json", model.config.to_dict())
    write_checksums(directory)


def load_model(directory: str | os.PathLike) -> MultiDomainNet:
    """Rebuild a model saved by :func:`save_model`.

    Raises:
        StorageError: when a file differs from ``checksums.json`` (a folder written before
            checksums existed has none and is loaded unverified).
    """
    directory = Path(directory)
    verify_checksums(directory, "model folder")
    config = ModelConfig.from_dict(read_json(directory / "config.json", "model config"))
    model = build_model(config)
    load_shared(model, directory / "shared.safetensors")
    paths = [directory / "domains" / f"{domain}.safetensors" for domain in config.domains]
    # replace: the model was just built for them
    load_domains(model, paths, list(config.domains), replace=True)
    return model


def _save(state: dict, path: str | os.PathLike, fields: dict[str, Any]) -> None:
    tensors = {key: value.detach().contiguous() for key, value in state.items()}
    metadata = {METADATA_KEY: json.dumps(fields, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _load(path: str | os.PathLike, expected_format: str) -> tuple[dict, dict[str, Any]]:
    """The tensors and metadata fields of a file this module wrote, as ``expected_format``."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except SafetensorError as err:
        raise DataError(f"{path} is not a readable safetensors file: {err}") from err
    fields = _metadata_fields(metadata, path)
    if fields.get("format") != expected_format:
        raise DataError(
            f"{path} is a {fields.get('format', 'foreign')!r} file, expected {expected_format!r}"
        )
    missing = [key for key in REQUIRED_FIELDS[expected_format] if key not in fields]
    classes = fields.get("num_classes", 1)
    if missing or type(classes) is not int or classes < 1:
        problem = f"no {', '.join(missing)}" if missing else f"num_classes = {classes!r}"
        raise DataError(f"{path} has incomplete metadata ({problem}): re-save it with multidomain")
    return tensors, fields


def _metadata_fields(metadata: dict[str, str], path) -> dict[str, Any]:
    """The fields of the metadata, typed: one sorted-JSON key, or (files written before) one
    string-valued key per field."""
    try:
        if METADATA_KEY in metadata:
            fields = json.loads(metadata[METADATA_KEY])
            if not isinstance(fields, dict):
                raise ValueError("not a JSON object")
            return fields
        fields = dict(metadata)
        converters = {"architecture": json.loads, "num_classes": int, "dropout": float}
        for key, convert in converters.items():
            if key in fields:
                fields[key] = convert(fields[key])
        return fields
    except ValueError as err:
        raise DataError(
            f"{path} has unreadable metadata ({err}): re-save it with multidomain"
        ) from err


def read_pack_fields(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata fields of a domain pack (checked as :func:`load_domain` reads them)."""
    return _load(path, DOMAIN_FORMAT)[1]


def _check_architecture(model: MultiDomainNet, fields: dict[str, Any], path) -> None:
    saved = normalized_architecture(fields.get("architecture"))  # packs of earlier versions too
    ours = model.config.architecture()
    if saved != ours:
        saved = saved if isinstance(saved, dict) else {}
        differences = "; ".join(
            f"{key}: pack {saved.get(key, '(none)')!r}, model {ours.get(key, '(none)')!r}"
            for key in sorted(set(saved) | set(ours))
            if saved.get(key) != ours.get(key)
        )
        raise ConfigError(
            f"wrong architecture: {path} was made for another model ({differences}); "
            f"load it into a {saved.get('source', 'matching')} model with those settings"
        )


def _check_fingerprint(fields: dict[str, Any], fingerprint: str, path) -> None:
    """A pack's own weights fit only the shared weights it was trained on."""
    saved = fields.get("shared_fingerprint")
    if saved is not None and saved != fingerprint:
        raise ConfigError(
            f"{path} was made for other shared weights (fingerprint {str(saved)[:12]}, this "
            f"model's {fingerprint[:12]}): it comes from another model (trained separately or "
            "further), where its domain would predict wrongly; import it into the model it was "
            "exported from"
        )


def _card(fields: dict[str, Any], path) -> DomainCard:
    try:
        return DomainCard.from_fields(fields)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path} has an unreadable domain card ({err}): re-export it") from err


@torch.no_grad()
def _copy_strict(targets: dict, tensors: dict, path) -> None:
    """Copy ``tensors`` into ``targets`` after checking all of them (all or nothing)."""
    _check_keys_and_shapes(targets, tensors, path)
    for key in sorted(targets):
        _check_values(key, tensors[key], targets[key], path)
    for key, target in targets.items():
        target.copy_(tensors[key])


def _check_keys_and_shapes(targets: dict, tensors: dict, path) -> None:
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
        raise DataError(
            f"{path} does not match the model ({total} problems): " + "; ".join(problems)
        )


def _check_values(key: str, tensor: torch.Tensor, target: torch.Tensor, path) -> None:
    """Refuse a tensor of another kind than the model's (float for weights, integer for
    counters such as ``num_batches_tracked``) or with NaN/inf values."""
    if target.is_floating_point() and not tensor.is_floating_point():
        raise DataError(
            f"{path}: tensor {key} is {tensor.dtype}, not a floating-point tensor: the file was "
            "not written by multidomain's save functions; re-save it"
        )
    if not target.is_floating_point() and (tensor.is_floating_point() or tensor.is_complex()):
        raise DataError(
            f"{path}: tensor {key} is {tensor.dtype}, but the model keeps an integer tensor "
            f"({target.dtype}) there: re-save the file with multidomain"
        )
    if tensor.is_floating_point():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise DataError(
                f"{path}: tensor {key} holds {bad} non-finite values (nan/inf) of "
                f"{tensor.numel()}: it was saved from a diverged model; use an earlier checkpoint"
            )
