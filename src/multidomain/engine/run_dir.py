"""The run folder: its resolved config (forced on resume), and the final model."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from multidomain.engine.config import TrainConfig, dump_config, load_config
from multidomain.io import atomic_path

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
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
}


def _flat(config: TrainConfig) -> dict[str, object]:
    flat = {"recipe": config.recipe}
    for section in ("data", "model", "optim", "run"):
        for key, value in dataclasses.asdict(getattr(config, section)).items():
            flat[f"{section}.{key}"] = value
    return flat


def prepare_run_dir(run_dir: Path, config: TrainConfig | None, resume: bool) -> TrainConfig:
    """Check the folder against the request and return the config the run will use.

    A new run writes its resolved config; a resumed run uses the saved one, and a changed
    setting that would alter the result is an error naming it.
    """
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.is_file():
        if resume:
            raise ValueError(f"--resume: {run_dir} holds no run to resume (no {CONFIG_FILE})")
        if config is None:
            raise ValueError("give --config (or --set) for a new run")
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, config)
        return config
    if not resume:
        raise ValueError(
            f"{run_dir} already holds a run; pass --resume to continue it, or choose another --out"
        )
    saved = load_config(saved_path)
    if config is None:
        return saved
    old, new = _flat(saved), _flat(config)
    changed = sorted(k for k in old if old[k] != new[k] and k not in RESUME_MUTABLE)
    if changed:
        details = "; ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in changed)
        raise ValueError(
            f"cannot resume {run_dir} with a different config ({details}); "
            f"drop those settings or start a new run with another --out"
        )
    merged = load_config(saved_path, [f"{k}={_yaml_value(new[k])}" for k in RESUME_MUTABLE])
    if merged != saved:  # the folder records what the run uses now (a later --resume too)
        write_config(run_dir, merged)
    return merged


def _yaml_value(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def write_config(run_dir: Path, config: TrainConfig) -> None:
    with atomic_path(run_dir / CONFIG_FILE) as tmp:
        tmp.write_text(dump_config(config))


def publish_model(source: Path, run_dir: Path) -> Path:
    """Copy a checkpoint's model folder to ``RUN_DIR/model`` (atomically: copy, then rename)."""
    target = run_dir / "model"
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".model."))
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        if target.exists():
            old = target.with_name(".model.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
