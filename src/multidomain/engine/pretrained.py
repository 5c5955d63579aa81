"""Pretrained source weights shipped with the package (mini-decathlon version 2, issue 11).

Pretraining on version 2's source (1,406 emoji classes, 21,090 images) takes about ten minutes
on two CPU cores, too long for the demo's budget, and every comparison needs it for both
backbones. So the package ships the result: one model folder per backbone under
``multidomain/weights/`` (``save_model``'s layout, checksums included, plus ``provenance.json``).
``model.init: shipped:NAME`` starts a run from one of them.

``multidomain pretrained build`` remakes a folder with the documented recipe and records where
it was made (torch version, thread count, CPU model) with each file's SHA-256: rebuilt there, the
files are bit-identical; elsewhere they agree within the accuracy tolerance that README states.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import shutil
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from multidomain.errors import ConfigError
from multidomain.io import make_temp_dir, read_json, write_checksums, write_json

logger = logging.getLogger(__name__)

SHIPPED_PREFIX = "shipped:"
PROVENANCE_FILE = "provenance.json"
# The plain pretraining of each backbone: one domain, so every method computes the same network.
PRETRAIN_METHOD = {"resnet26_dw": "pointwise", "resnet26_std": "all"}


def shipped_root() -> Path:
    return Path(str(resources.files("multidomain") / "weights"))


def shipped_name(version: int, source: str, method: str | None = None) -> str:
    """The shipped folder of ``source``'s pretraining on mini-decathlon ``version``: the plain
    one (``mini2-resnet26_std``), or under another ``method`` (``mini2-resnet26_std-series``:
    the series-adapter row starts from a source network pretrained with its adapters)."""
    plain = method is None or method == PRETRAIN_METHOD.get(source)
    return f"mini{version}-{source}" if plain else f"mini{version}-{source}-{method}"


def list_shipped() -> list[str]:
    root = shipped_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())


def is_shipped(value: str | Path) -> bool:
    return str(value).startswith(SHIPPED_PREFIX)


def shipped_model_dir(value: str) -> Path:
    """The folder ``shipped:NAME`` names.

    Raises:
        ConfigError: no such shipped folder (the message lists those there are).
    """
    name = value.removeprefix(SHIPPED_PREFIX)
    folder = shipped_root() / name
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"no shipped pretrained weights named {name!r}: use one of "
            f"{[SHIPPED_PREFIX + n for n in list_shipped()]}, or a run or model folder"
        )
    return folder


def has_shipped(version: int, source: str, method: str | None = None) -> bool:
    return shipped_name(version, source, method) in list_shipped()


def pretrain_overrides(source: str, method: str | None = None) -> list[str]:
    """``--set`` values that turn the version's pretraining recipe into ``source``'s, under
    ``method`` (default: the backbone's plain pretraining method)."""
    if source not in PRETRAIN_METHOD:
        raise ConfigError(f"unknown backbone {source!r}: use one of {list(PRETRAIN_METHOD)}")
    return [f"model.source={source}", f"model.method={method or PRETRAIN_METHOD[source]}"]


def build_source_weights(
    version: int,
    source: str,
    out: Path,
    data_root: Path | None = None,
    threads: int = 1,
    extra: Sequence[str] = (),
    method: str | None = None,
) -> dict[str, Any]:
    """Pretrain ``source`` on ``version``'s source domain into ``out/run`` (resumable) and
    write the shippable folder ``out/<shipped name>`` with its provenance; returns it.
    ``method``: the method in place during pretraining (default: the plain one; ``series``
    for the series-adapter row, Rebuffi's protocol).

    ``threads``: torch's thread count, part of what makes the result bit-identical (one by
    default: it does not depend on the core count, and it stays fast on a busy machine);
    ``extra``: further ``--set`` values over the recipe (recorded in the provenance)."""
    from multidomain.engine.demo import recipe, run_stage, stage_config

    pretrain = recipe("pretrain", version)
    overrides = [*pretrain_overrides(source, method), f"run.threads={threads}", *extra]
    target = out / shipped_name(version, source, method)
    if (target / PROVENANCE_FILE).is_file():
        logger.info("%s is built already: reusing it", target)
        return read_json(target / PROVENANCE_FILE, "provenance")
    model_dir = run_stage(stage_config(pretrain, data_root, overrides), out / "run")
    tmp = make_temp_dir(out, f".{target.name}.")
    try:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        provenance = {
            "command": f"multidomain pretrained build --version {version} --source {source} "
            + (f"--method {method} " if method else "")
            + f"--threads {threads}"
            + "".join(f" --set {value}" for value in extra),
            "recipe": pretrain,
            "overrides": overrides,
            "source_validation": _last_validation(out / "run"),
            "made": datetime.date.today().isoformat(),
            "torch": torch.__version__,
            "threads": threads,
            "cpu": cpu_model(),
            "sha256": read_json(tmp / "checksums.json", "checksums")["files"],
        }
        write_json(tmp / PROVENANCE_FILE, provenance)
        write_checksums(tmp)
        os.replace(tmp, target)  # whole or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return provenance


def _last_validation(run: Path) -> dict[str, float] | None:
    """The source domain's validation accuracy after the last epoch (``metrics.jsonl``)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    evals = [row["accuracy"] for row in rows if row.get("event") == "val"]
    return evals[-1] if evals else None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def read_provenance(name: str) -> dict[str, Any]:
    return read_json(shipped_model_dir(name) / PROVENANCE_FILE, "provenance")
