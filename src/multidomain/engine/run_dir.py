"""The run folder: what may become one, its resolved config (forced on resume), its lock, the
data it was started on, and the final model.

Promises (README, "Reliability"): a new run goes only into a missing or empty folder; nothing
is written before the whole request has been checked; one process at a time holds a run folder;
the data root is stored as an absolute path, with a fingerprint of the annotation files, so a
resume from another directory trains on the same data, and a changed root is checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import yaml

from multidomain.data.benchmark import BENCHMARK_FILE
from multidomain.data.devkit import SPLITS, annotation_path
from multidomain.engine.checkpoint import checkpoint_root, remove_crash_leftovers
from multidomain.engine.config import TrainConfig, check_model_init, dump_config, load_config
from multidomain.engine.pretrained import is_shipped
from multidomain.errors import ConfigError, StorageError
from multidomain.io import (
    atomic_path,
    make_temp_dir,
    read_json,
    remove_temporaries,
    write_checksums,
    write_json,
)
from multidomain.locks import LOCK_FILE, folder_lock

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
DATA_FILE = "data.json"  # the data root and the fingerprint of its annotation files
MODEL_TEMP_PREFIX = ".model."
# Settings that may change when a run is resumed: they do not change what is computed.
RESUME_MUTABLE = {
    "data.workers",
    "data.cache_images",
    "data.cache_limit_gb",
    "data.skip_bad",  # the way to get past a corrupt image met mid-run
    "run.device",
    "run.max_steps",
    "run.log_every",
    "run.progress",
    "run.tensorboard",
    "run.checkpoint_every",
    "run.dist_timeout",
}
# Settings that hold for one command only and are never saved: a smoke-test limit must not
# stop every later --resume.
NOT_SAVED = {"max_steps": None}  # fields of the run section


def _flat(config: TrainConfig) -> dict[str, object]:
    flat = {"recipe": config.recipe}
    for section in ("data", "model", "optim", "run"):
        for key, value in dataclasses.asdict(getattr(config, section)).items():
            flat[f"{section}.{key}"] = value
    return flat


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with ``data.root`` and ``model.init`` made absolute (against the current
    directory), so a later command from another directory reads the same files."""
    data = dataclasses.replace(config.data, root=_absolute(config.data.root))
    init = config.model.init
    if init and not is_shipped(init):  # shipped:NAME is a name, not a path
        init = _absolute(init)
    model = dataclasses.replace(config.model, init=init)
    return dataclasses.replace(config, data=data, model=model)


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != LOCK_FILE)


def check_new_run_folder(run_dir: Path) -> None:
    """A new run goes only into a missing or empty folder (a lone ``.lock`` of ours counts as
    empty); anything else is refused before a byte is written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise StorageError(f"--out {run_dir} is a file, not a folder: give a folder path")
    if not run_dir.is_dir() or not _entries(run_dir):
        return
    if (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out"
        )
    shown = ", ".join(_entries(run_dir)[:5])
    raise ConfigError(
        f"{run_dir} is not empty ({shown}) and holds no run: a new run goes only into a missing "
        "or empty folder, so nothing there is touched; choose another --out"
    )


def resolve_run_config(run_dir: Path, config: TrainConfig | None, resume: bool) -> TrainConfig:
    """Check the folder against the request and return the config the run will use.

    Reads only. A new run's ``data.root`` becomes absolute; a resumed run uses the saved config,
    and a changed setting that would alter the result is an error naming it (``data.root`` may
    change when the new root holds the same annotations: checked by :func:`check_data`).
    Relative paths become absolute (:func:`absolute_paths`).
    """
    saved_path = run_dir / CONFIG_FILE
    if not resume:
        check_new_run_folder(run_dir)
        if config is None:
            raise ConfigError("give --config (or --set) for a new run")
        config = absolute_paths(config)
        check_model_init(config)
        return config
    if not saved_path.is_file():
        detail = (
            f"it has checkpoints but no {CONFIG_FILE}, so the settings they were made with are "
            "unknown and it cannot be resumed safely"
            if checkpoint_root(run_dir).is_dir()
            else f"no {CONFIG_FILE}"
        )
        raise ConfigError(f"--resume: {run_dir} holds no run to resume ({detail})")
    saved = absolute_paths(load_run_config(run_dir))  # relative in runs saved before
    if config is None:
        return saved
    config = absolute_paths(config)
    old, new = _flat(saved), _flat(config)
    mutable = RESUME_MUTABLE | {"data.root"}
    changed = sorted(k for k in old if old[k] != new[k] and k not in mutable)
    if changed:
        details = "; ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in changed)
        raise ConfigError(
            f"cannot resume {run_dir} with a different config ({details}); "
            f"drop those settings or start a new run with another --out"
        )
    return config


def _yaml_value(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def load_run_config(run_dir: Path, overrides: list[str] = ()) -> TrainConfig:
    """The config saved in ``run_dir`` with ``overrides`` applied. Per-command settings
    (``NOT_SAVED``) start reset: versions before 0.2 saved ``run.max_steps``, and a resume
    that read it back would stop at the same step every time."""
    resets = [f"run.{key}={_yaml_value(value)}" for key, value in NOT_SAVED.items()]
    return load_config(run_dir / CONFIG_FILE, [*resets, *overrides])


def write_config(run_dir: Path, config: TrainConfig) -> None:
    """Save the config the run resumes with (per-command settings reset, see ``NOT_SAVED``)."""
    run = dataclasses.replace(config.run, **NOT_SAVED)
    with atomic_path(run_dir / CONFIG_FILE) as tmp:
        tmp.write_text(dump_config(dataclasses.replace(config, run=run)))


@contextlib.contextmanager
def claim_run_dir(run_dir: Path, new: bool) -> Iterator[None]:
    """Hold the run folder's lock; clear what a crashed process left; and when a new run fails
    before its config is written, leave the folder as it was (removed if it was missing)."""
    created = not run_dir.exists()
    with folder_lock(run_dir, "run folder"):
        for name in remove_temporaries(run_dir, (MODEL_TEMP_PREFIX,)) + remove_crash_leftovers(
            run_dir
        ):
            logger.info("removed %s, left by an interrupted process", name)
        try:
            yield
        except BaseException:
            if new and not (run_dir / CONFIG_FILE).exists():
                _unclaim(run_dir, created)
            raise


def _unclaim(run_dir: Path, created: bool) -> None:
    (run_dir / LOCK_FILE).unlink(missing_ok=True)
    if created:
        with contextlib.suppress(OSError):  # not empty: something else was put there
            run_dir.rmdir()


# -- the data a run was started on -------------------------------------------------------------
def data_fingerprint(root: Path, domains: list[str]) -> str:
    """SHA-256 over the benchmark file and the annotation files of ``domains`` under ``root``
    (images are not read: the fingerprint says which annotations a run was made with)."""
    digest = hashlib.sha256()
    files = [root / BENCHMARK_FILE]
    for domain in sorted(domains):
        for split in SPLITS:
            files += [annotation_path(root, domain, split, stripped=s) for s in (False, True)]
    for path in files:
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def record_data(run_dir: Path, root: Path, fingerprint: str) -> None:
    write_json(run_dir / DATA_FILE, {"root": str(root), "fingerprint": fingerprint})


def check_data(run_dir: Path, root: Path, fingerprint: str) -> None:
    """On resume: the data must be what the run started on (a moved copy is fine)."""
    path = run_dir / DATA_FILE
    if not path.is_file():  # a run started before data.json existed
        return
    recorded = read_json(path, "run data record")
    if recorded.get("fingerprint") == fingerprint:
        if recorded.get("root") != str(root):
            logger.info(
                "data root changed from %s to %s (same annotations)", recorded["root"], root
            )
            record_data(run_dir, root, fingerprint)
        return
    raise ConfigError(
        f"the data at {root} is not what {run_dir} was started on (at {recorded.get('root')}): "
        "its annotation files differ. Resume with --set data.root=<the original data>, or "
        "start a new run with another --out"
    )


# -- the final model ---------------------------------------------------------------------------
def publish_model(source: Path, run_dir: Path) -> Path:
    """Copy a checkpoint's model folder to ``RUN_DIR/model`` (atomically: copy, then rename)."""
    target = run_dir / "model"
    tmp = make_temp_dir(run_dir, MODEL_TEMP_PREFIX)
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        if not (tmp / "checksums.json").is_file():
            write_checksums(tmp)
        replace_folder(tmp, target, MODEL_TEMP_PREFIX)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def replace_folder(source: Path, target: Path, temp_prefix: str) -> None:
    """Put the complete folder ``source`` in place of ``target`` (two renames: a crash
    between them leaves ``target`` missing and the old one as ``<prefix>old`` next to it, both
    whole; nothing is ever half-written). ``source`` must be a sibling of ``target``."""
    if not target.exists():
        os.replace(source, target)
        return
    old = target.parent / f"{temp_prefix}old"
    shutil.rmtree(old, ignore_errors=True)
    os.replace(target, old)
    os.replace(source, target)
    shutil.rmtree(old, ignore_errors=True)
