"""Crash-safe checkpoints of a training run.

Layout under ``RUN_DIR/checkpoints/``::

    latest.json                  {"dir": "step-00000420"}   (replaced atomically, last)
    step-00000420/model/         the model (``models.packs.save_model`` layout, safetensors)
    step-00000420/best/          the best model so far (files hard-linked when unchanged)
    step-00000420/optimizer.pt   optimizer (and grad scaler) state: tensors and numbers only
    step-00000420/state.json     where the run stands (epoch, step, best scores, ...)

A checkpoint is written into a temporary folder, fsynced, renamed, and only then named by
``latest.json``; older checkpoints are deleted after that. A kill at any moment therefore
leaves ``latest.json`` naming a complete checkpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from multidomain.io import read_json, write_json
from multidomain.models import MultiDomainNet
from multidomain.models.packs import (
    load_domain,
    load_shared,
    save_domain,
    save_model,
    save_shared,
)

logger = logging.getLogger(__name__)

LATEST = "latest.json"


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``latest.json`` names, or None when the run has no checkpoint yet."""
    pointer = checkpoint_root(run_dir) / LATEST
    if not pointer.is_file():
        return None
    folder = checkpoint_root(run_dir) / read_json(pointer, "checkpoint pointer")["dir"]
    if not (folder / "state.json").is_file():
        raise ValueError(
            f"{pointer} names {folder}, which is incomplete; the run folder is damaged"
        )
    return folder


def save_checkpoint(
    run_dir: Path,
    model: MultiDomainNet,
    optimizer_state: dict[str, Any],
    state: dict[str, Any],
    best: BestUpdate,
) -> Path:
    """Write a complete checkpoint and make it the latest."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    previous = latest_checkpoint(run_dir)
    name = f"step-{state['global_step']:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    try:
        save_model(model, tmp / "model")
        _write_best(model, tmp / "best", previous, best)
        torch.save(optimizer_state, tmp / "optimizer.pt")
        write_json(tmp / "state.json", state)
        _fsync_tree(tmp)
        final = _free_name(root, name)
        os.replace(tmp, final)
        write_json(root / LATEST, {"dir": final.name})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_stale(root, keep=final.name)
    return final


def _free_name(root: Path, name: str) -> Path:
    """``root / name``, or ``name-2``, ``name-3``... when a step is saved again (a periodic
    save then the epoch's end, or a try that died before naming it latest): the existing
    folder may be the one ``latest.json`` names, so it is never deleted before the new one
    is in place (``_remove_stale`` removes it after)."""
    final, n = root / name, 1
    while final.exists():
        n += 1
        final = root / f"{name}-{n}"
    return final


@dataclass(frozen=True)
class BestUpdate:
    """Which parts of the model are, as of now, the best seen on validation."""

    domains: frozenset[str] = frozenset()
    shared: bool = False


def _write_best(
    model: MultiDomainNet, best: Path, previous: Path | None, update: BestUpdate
) -> None:
    """The best model: newly best parts from ``model``, the others hard-linked from the
    previous checkpoint's best (files are never modified in place, so links are safe)."""
    prev_best = previous / "best" if previous is not None else None
    if prev_best is None or not prev_best.is_dir():
        save_model(model, best)
        return
    (best / "domains").mkdir(parents=True)
    write_json(best / "config.json", model.config.to_dict())
    _save_or_link(
        best / "shared.safetensors",
        prev_best / "shared.safetensors",
        update.shared,
        lambda path: save_shared(model, path),
    )
    for domain in model.domains:
        name = f"{domain}.safetensors"
        _save_or_link(
            best / "domains" / name,
            prev_best / "domains" / name,
            domain in update.domains,
            lambda path, domain=domain: save_domain(model, domain, path),
        )


def _save_or_link(target: Path, previous: Path, fresh: bool, save) -> None:
    if fresh or not previous.is_file():
        save(target)
        return
    try:
        os.link(previous, target)
    except OSError:  # a file system without hard links
        shutil.copy2(previous, target)


def load_checkpoint_into(model: MultiDomainNet, folder: Path, part: str = "model") -> None:
    """Load the weights of a checkpoint's ``model`` or ``best`` into ``model`` (strictly)."""
    load_shared(model, folder / part / "shared.safetensors")
    for domain in model.domains:
        load_domain(model, folder / part / "domains" / f"{domain}.safetensors", domain)


def load_optimizer_state(folder: Path) -> dict[str, Any]:
    # weights_only: the file holds tensors and numbers written by this project, nothing else
    return torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu")


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _remove_stale(root: Path, keep: str) -> None:
    for entry in root.iterdir():
        if entry.is_dir() and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)
