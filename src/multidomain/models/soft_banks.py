"""The banks a soft domain's pack depends on (issue 10, PAPER.md section 3).

A soft-sharing domain's gates mix the depthwise banks of *other* domains, which its pack does
not hold. Its pack therefore records, per soft-sharing layer, the banks in the gate's order
with a fingerprint (SHA-256 of the bank's tensors) of each bank the gate mixes; its own bank
travels in the pack and masked banks play no part, so they have none (``null``).

Loading checks the record against the model before anything changes: a mixed bank the model
lacks, or one whose weights differ, is refused with its domain and layer named. The gate's
rows are positional (one per bank, in the model's domain order), so they are re-ordered by
bank name into the model's order; a model bank that the pack does not know is masked, as
adding a domain masks the new bank in the existing gates.
"""

from __future__ import annotations

from typing import Any

import torch

from multidomain.errors import ConfigError, DataError
from multidomain.layers.soft_sharing import SoftSepConv
from multidomain.models.cards import shared_fingerprint

BANKS_FIELD = "soft_banks"
# the gate tensors with one entry per bank (rows of fc2, the mask)
POSITIONAL = ("gate.fc2.weight", "gate.fc2.bias", "gate.mixes")


def soft_layers(model: torch.nn.Module) -> dict[str, SoftSepConv]:
    """Every soft-sharing layer of ``model`` by its module path."""
    return {path: m for path, m in model.named_modules() if isinstance(m, SoftSepConv)}


def bank_fingerprint(layer: SoftSepConv, bank: str) -> str:
    return shared_fingerprint(layer.conv_dw[bank].state_dict())


def bank_record(model: torch.nn.Module, domain: str) -> dict[str, Any] | None:
    """``{"own": domain, "layers": {path: [[bank, fingerprint or None], ...]}}`` for a
    domain with gates; None for any other (the source of a soft model, other methods)."""
    layers = {}
    for path, layer in soft_layers(model).items():
        if domain not in layer.gate:
            continue
        mixes = layer.gate[domain].mixes.tolist()
        layers[path] = [
            [bank, bank_fingerprint(layer, bank) if mixed and bank != domain else None]
            for bank, mixed in zip(layer.gate.bank_names, mixes, strict=True)
        ]
    return {"own": domain, "layers": layers} if layers else None


def incoming_banks(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """The fingerprint of each bank a pack's tensors hold (its own), by layer path: what the
    model's bank will be once the pack is loaded."""
    result = {}
    for layer_path in soft_layers(model):
        prefix = f"{layer_path}.conv_dw."
        bank = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if bank:
            result[layer_path] = shared_fingerprint(bank)
    return result


def check_banks(
    model: torch.nn.Module,
    record: dict[str, Any],
    name: str,
    path,
    incoming: dict[str, dict[str, str]] | None = None,
) -> None:
    """Refuse a pack whose gates mix a bank that ``model`` lacks or holds other weights in;
    ``name``: the domain the pack is loaded as; ``incoming``: the banks of packs loaded
    together with it (domain -> :func:`incoming_banks`), which count instead of the model's."""
    layers = soft_layers(model)
    incoming = incoming or {}
    for layer_path, banks in _layers_of(record, path).items():
        if layer_path not in layers:
            raise DataError(
                f"{path} has gates for a soft-sharing layer {layer_path!r} that the model lacks: "
                "load it into the model it was exported from"
            )
        layer = layers[layer_path]
        for bank, fingerprint in banks:
            if fingerprint is None:
                continue
            if bank in incoming and bank != name:
                ours = incoming[bank].get(layer_path)
            else:
                ours = bank_fingerprint(layer, bank) if bank in layer.conv_dw else None
            _check_bank(ours, layer_path, bank, fingerprint, name, path)


def _check_bank(ours: str | None, layer_path: str, bank: str, fingerprint: str, name, path):
    """``ours``: the fingerprint the model's bank will have (None: the model lacks it)."""
    where = f"the depthwise bank of domain {bank!r} at layer {layer_path}"
    if bank == name:
        raise ConfigError(
            f"{path} cannot be loaded as {name!r}: its gates mix {where}, which the pack would "
            "overwrite with its own; load it under another name"
        )
    if ours is None:
        raise ConfigError(
            f"{path} needs {where}, which this model lacks: add domain {bank!r} (its pack) to "
            "the model first or load the packs together (`multidomain domains import PACK PACK "
            "...`, models.packs.load_domains), or load the pack into the model it was exported "
            "from"
        )
    if ours != fingerprint:
        raise ConfigError(
            f"{path} was trained on other weights of {where} (fingerprint {fingerprint[:12]}, "
            f"the model's {ours[:12]}): {bank!r} was retrained or replaced since; load the "
            "pack into the model it was exported from (several packs: together, with "
            "`multidomain domains import PACK PACK ...` or models.packs.load_domains), or "
            "retrain this domain's gates (the soft stage)"
        )


def check_bank_users(
    model: torch.nn.Module, name: str, incoming: dict[str, str], loading: set[str], path
) -> None:
    """Refuse to replace ``name``'s banks by other weights (``incoming``: the pack's, by layer)
    while the gates of a domain not in ``loading`` mix them: its outputs would change."""
    for layer_path, layer in soft_layers(model).items():
        new = incoming.get(layer_path)
        if name not in layer.conv_dw or new is None or bank_fingerprint(layer, name) == new:
            continue
        position = layer.gate.bank_names.index(name)
        users = [
            domain
            for domain, gate in layer.gate.items()
            if domain not in loading and bool(gate.mixes[position])
        ]
        if users:
            raise ConfigError(
                f"loading {path} as {name!r} would replace the depthwise bank of domain "
                f"{name!r} at layer {layer_path}, which the gates of {', '.join(users)} mix: "
                "their outputs would change; load their packs together with it "
                "(`multidomain domains import PACK PACK ...`), or remove those domains first"
            )


def align_gates(model, tensors: dict, record: dict[str, Any], name: str, path) -> dict:
    """``tensors`` with each gate's per-bank entries re-ordered into the model's bank order
    (the pack's own bank becomes ``name``); a model bank unknown to the pack gets a zero row,
    masked. Call after :func:`check_banks`."""
    tensors = dict(tensors)
    layers = soft_layers(model)
    for layer_path, banks in _layers_of(record, path).items():
        if layer_path not in layers:
            continue  # refused by check_banks
        order = [name if bank == record["own"] else bank for bank, _ in banks]
        target = layers[layer_path].gate.bank_names
        if order == target:
            continue
        for suffix in POSITIONAL:
            key = f"{layer_path}.{suffix}"
            if key in tensors:
                tensors[key] = _reorder(tensors[key], order, target)
    return tensors


def _reorder(tensor: torch.Tensor, order: list[str], target: list[str]) -> torch.Tensor:
    """Rows of ``tensor`` (one per bank of ``order``) for the banks of ``target``."""
    if tensor.shape[0] != len(order):
        return tensor  # left to the strict shape check of the copy
    rows = [tensor[order.index(b)] if b in order else tensor[0].new_zeros(()) for b in target]
    return torch.stack([r.expand_as(tensor[0]) for r in rows])


def _layers_of(record: Any, path) -> dict[str, list]:
    """The record's ``{layer: [[bank, fingerprint or None], ...]}``, checked for shape."""
    layers = record.get("layers") if isinstance(record, dict) else None
    if not isinstance(layers, dict) or not isinstance(record.get("own"), str):
        raise DataError(f"{path} has an unreadable {BANKS_FIELD} record: re-export it")
    for layer_path, banks in layers.items():
        if not isinstance(banks, list) or not all(_is_bank_entry(b) for b in banks):
            raise DataError(
                f"{path} has an unreadable {BANKS_FIELD} entry for layer {layer_path!r} "
                f"(expected [[bank, fingerprint or null], ...], got {banks!r:.80}): re-export it"
            )
    return layers


def _is_bank_entry(entry: Any) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and (entry[1] is None or isinstance(entry[1], str))
    )
