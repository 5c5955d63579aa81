"""Crash-safe checkpoints of a training run.

Layout under ``RUN_DIR/checkpoints/``::

    latest.json                  {"dir": "step-00000420"}   (replaced atomically, last)
    step-00000420/model/         the model (``models.packs.save_model`` layout, safetensors)
    step-00000420/best/          the best model so far (files hard-linked when unchanged)
    step-00000420/optimizer.pt   optimizer (and grad scaler) state: tensors and numbers only
    step-00000420/state.json     where the run stands (epoch, step, best scores, ...)
    step-00000420/checksums.json SHA-256 of every file above (written last: the folder is
                                 complete when it verifies)

A checkpoint is written into a temporary folder, fsynced, renamed, and only then named by
``latest.json``. The two newest complete checkpoints are kept: when the newest does not verify
(a flipped byte, a lost file), the run falls back to the one before, with a warning. When
``latest.json`` is lost or damaged, the newest complete checkpoint is found by scanning. Only
folders this module names (``step-NNNNNNNN[-k]``) are ever deleted, and only those older than
the checkpoint the new one supersedes.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from multidomain.errors import StorageError
from multidomain.io import (
    checksum_problems,
    make_temp_dir,
    read_json,
    remove_temporaries,
    write_checksums,
    write_json,
)
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
KEEP = 2  # complete checkpoints kept: the newest and the one to fall back to
_NAME = re.compile(r"^step-(\d{8})(?:-(\d+))?$")
TEMP_PREFIX = ".step-"


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def _order(folder: Path) -> tuple[int, int]:
    """Sort key of a checkpoint folder: (global step, repeat number)."""
    match = _NAME.match(folder.name)
    return int(match.group(1)), int(match.group(2) or 1)


def checkpoint_folders(run_dir: Path) -> list[Path]:
    """The run's checkpoint folders (complete or not), oldest first."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and p.is_dir()]
    return sorted(found, key=_order)


def checkpoint_problems(folder: Path) -> list[str]:
    """Why ``folder`` is not a complete, intact checkpoint (``[]`` when it is)."""
    if not (folder / "state.json").is_file():
        return ["no state.json"]
    # None: no checksums.json, a checkpoint written before they existed (complete, since
    # folders were renamed into place only when complete), with nothing to verify
    return checksum_problems(folder) or []


def _pointer(run_dir: Path) -> Path | None:
    """The folder ``latest.json`` names, if it names one of ours (never a path elsewhere)."""
    pointer = checkpoint_root(run_dir) / LATEST
    if not pointer.is_file():
        return None
    try:
        name = read_json(pointer, "checkpoint pointer").get("dir")
    except (ValueError, AttributeError):
        logger.warning("%s is unreadable: ignoring it", pointer)
        return None
    if not isinstance(name, str) or not _NAME.match(name):
        logger.warning(
            "%s names %r, which is not a checkpoint folder of this run: ignoring it", pointer, name
        )
        return None
    return checkpoint_root(run_dir) / name


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete, intact checkpoint of the run, or None when it has none.

    The folder ``latest.json`` names is preferred; when that one is missing or fails its
    checksums, the newest complete one is used, with a warning that says which and why.

    Raises:
        StorageError: when checkpoint folders exist but none of them is intact.
    """
    named = _pointer(run_dir)  # warns when latest.json is unreadable or names a foreign path
    candidates = checkpoint_folders(run_dir)
    if named in candidates:
        candidates.remove(named)
        candidates.append(named)  # tried first
    elif candidates and named is not None:
        logger.warning("%s does not exist: using the newest complete checkpoint found", named)
    elif candidates and not (checkpoint_root(run_dir) / LATEST).exists():
        logger.warning(
            "%s is missing: using the newest complete checkpoint found",
            checkpoint_root(run_dir) / LATEST,
        )
    rejected = []
    for folder in reversed(candidates):
        problems = checkpoint_problems(folder)
        if not problems:
            if rejected:
                logger.warning(
                    "falling back to checkpoint %s: %s", folder.name, "; ".join(rejected)
                )
            return folder
        rejected.append(f"{folder.name} is damaged ({', '.join(problems[:3])})")
    if rejected:
        raise StorageError(
            f"no intact checkpoint in {checkpoint_root(run_dir)}: {'; '.join(rejected)}. "
            "Restore the run folder from a copy, or start a new run with another --out"
        )
    return None


def save_checkpoint(
    run_dir: Path,
    model: MultiDomainNet,
    optimizer_state: dict[str, Any],
    state: dict[str, Any],
    best: BestUpdate,
    previous: Path | None = None,
) -> Path:
    """Write a complete checkpoint and make it the latest.

    Args:
        previous: the checkpoint this one supersedes (the one the run resumed from or saved
            last): unchanged best parts are linked from it, and older ones are removed.
    """
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['global_step']:08d}"
    tmp = make_temp_dir(root, f"{TEMP_PREFIX}{name[len('step-') :]}.")
    try:
        save_model(model, tmp / "model")
        _write_best(model, tmp / "best", previous, best)
        torch.save(optimizer_state, tmp / "optimizer.pt")
        write_json(tmp / "state.json", state)
        write_checksums(tmp)
        _fsync_tree(tmp)
        final = _free_name(root, name)
        os.replace(tmp, final)
        write_json(root / LATEST, {"dir": final.name})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_superseded(run_dir, keep={final, previous})
    return final


def _free_name(root: Path, name: str) -> Path:
    """``root / name``, or ``name-2``, ``name-3``... when a step is saved again (a periodic
    save then the epoch's end, or a try that died before naming it latest): the existing
    folder is never deleted before the new one is in place."""
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
    write_checksums(best)


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
        path = folder / part / "domains" / f"{domain}.safetensors"
        load_domain(model, path, domain, replace=True)


def load_optimizer_state(folder: Path) -> dict[str, Any]:
    # weights_only: the file holds tensors and numbers written by this project, nothing else
    return torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu")


def remove_crash_leftovers(run_dir: Path) -> list[str]:
    """Temporary checkpoint folders and files a killed run left (call it holding the lock)."""
    return remove_temporaries(checkpoint_root(run_dir), (TEMP_PREFIX,))


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _remove_superseded(run_dir: Path, keep: set[Path | None]) -> None:
    """Delete our checkpoint folders older than every kept one (never a newer one: it may be
    the only copy of later work that a fallback skipped), and temporaries of dead saves."""
    kept = [folder for folder in keep if folder is not None]
    oldest_kept = min(_order(folder) for folder in kept)
    for folder in checkpoint_folders(run_dir):
        if folder not in kept and _order(folder) < oldest_kept:
            shutil.rmtree(folder, ignore_errors=True)
    remove_crash_leftovers(run_dir)
