"""Adding a domain to a trained model: the ``adapt`` recipe (PAPER.md section 4) on one new
domain, on top of an existing run, into a new run folder.

Only what the new domain owns trains (what the model's method gives it: ``optim.train`` of the
adapt recipe selects roles among the domain's own parameters), so every old domain of the
written model is bit-identical to the one it came from. A config that would train shared
weights is refused.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from multidomain.data.benchmark import load_benchmark
from multidomain.engine.config import ModelSection, TrainConfig, load_config
from multidomain.engine.model_folder import model_dir
from multidomain.engine.recipes import resolve_config_path
from multidomain.errors import ConfigError
from multidomain.io import read_json
from multidomain.models import ModelConfig


def default_recipe(data_root: str | os.PathLike) -> str:
    """The shipped adapt recipe of the data's benchmark (the Decathlon's, or the mini one's)."""
    return "decathlon/adapt" if load_benchmark(data_root).name == "decathlon" else "mini/adapt"


def add_domain_config(
    run: str | os.PathLike,
    data_root: str | os.PathLike,
    domain: str,
    init_from: str | None = None,
    recipe: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> TrainConfig:
    """The adapt config that adds ``domain`` (of the devkit tree ``data_root``) to the model of
    ``run``: the model's own architecture, the new domain initialised from ``init_from``.

    Raises:
        ConfigError: when the model already has ``domain``, ``init_from`` is not one of its
            domains, or the config would train shared weights.
    """
    folder = model_dir(run)
    saved = ModelConfig.from_dict(read_json(folder / "config.json", "model config"))
    if domain in saved.domains:
        raise ConfigError(
            f"the model of {run} already has a domain {domain!r} (domains: "
            f"{list(saved.domains)}): add another one, or `multidomain domains remove` it first"
        )
    if init_from is not None and init_from not in saved.domains:
        raise ConfigError(
            f"--init-from {init_from!r} is not a domain of the model; its domains: "
            f"{list(saved.domains)}"
        )
    path = resolve_config_path(recipe or default_recipe(data_root))
    config = load_config(
        path, [*_fixed_settings(saved, folder, data_root, domain, init_from), *overrides]
    )
    _check_trains_only_the_new_domain(config)
    return config


def _fixed_settings(
    saved: ModelConfig, folder: Path, data_root, domain: str, init_from: str | None
) -> list[str]:
    """The settings add-domain decides: the recipe, the data, and the model of the run."""
    section = {f.name for f in dataclasses.fields(ModelSection)}
    model = [f"model.{k}={v}" for k, v in saved.architecture().items() if k in section]
    return [
        "recipe=adapt",
        f"data.root={os.path.abspath(data_root)}",
        "data.prepare_offline=false",
        f"data.domains=[{domain}]",
        f"model.init={folder.resolve()}",
        f"model.channels_last={saved.channels_last}",
        *model,
        *([f"model.init_domain={init_from}"] if init_from else []),
    ]


def _check_trains_only_the_new_domain(config: TrainConfig) -> None:
    shared = [s for s in config.optim.train if s == "all" or s.split(".")[0] == "shared"]
    if shared:
        raise ConfigError(
            f"optim.train={config.optim.train} would train shared weights ({', '.join(shared)}), "
            "which would change every other domain of the model: add-domain trains only what "
            "the new domain owns; drop those selectors"
        )
