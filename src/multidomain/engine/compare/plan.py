"""The compare's plan (issue 10): rows x seeds -> training stages, each a run folder under the
output folder. Pretraining runs once per backbone, pretraining method and seed, before every row
that starts from it; a row that starts from another row (``soft`` after ``pointwise``) runs
after that row of the same seed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from multidomain.engine.compare.sources import pretrain_folder, source_init
from multidomain.engine.config import TrainConfig
from multidomain.engine.demo import QUICK, recipe, stage_config
from multidomain.engine.rows import Row
from multidomain.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    """What every stage of one compare shares.

    Attributes:
        out: the compare's folder (absolute: run configs record ``model.init`` paths).
        version: the mini-decathlon version (its recipes and data).
        data_root: ``--data``, or None for the recipes' own root.
        quick: width 0.125 and one epoch per stage (``demo --quick``).
        extra: ``--set`` values applied to every stage, after the recipe's and the row's.
    """

    out: Path
    version: int = 1
    data_root: Path | None = None
    quick: bool = False
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    """One training run of the plan."""

    label: str  # what the progress line names: "pointwise seed 0", "pretrain resnet26_dw ..."
    folder: Path
    config: TrainConfig
    row: str | None  # None: a pretraining stage
    seed: int
    pretraining: tuple[str, str] | None = None  # (backbone, method) of a pretraining stage


def row_folder(out: Path, row: str, seed: int) -> Path:
    return out / "runs" / f"{row}-s{seed}"


def row_recipe(row: Row, version: int) -> str:
    """The row's recipe (named ``mini/NAME``) in the recipe folder of data ``version``."""
    return recipe(row.recipe.split("/", 1)[1], version)


def build_plan(rows: list[Row], seeds: int, settings: Settings) -> list[Stage]:
    """Every stage, in running order: seed by seed, each pretraining before its first user."""
    stages: dict[Path, Stage] = {}
    for seed in range(seeds):
        for row in rows:
            if row.pretraining is not None:
                _add_pretraining(stages, row, seed, settings)
            stage = row_stage(row, seed, settings)
            stages[stage.folder] = stage
    return list(stages.values())


# --quick on version 2 trains on the first N training images of each class of every domain
# (every stage, every seed: the same fixed subset), to stay a smoke run of a few minutes: 2 a
# class of the source (2,812 of 21,090 emoji images, all 1,406 classes), 5 a class of each
# target, more where a target would have less than one batch of 64 (digits 10 classes, photos 8,
# textures 3, faces 2): 1,864 of 6,432 target images. Version 1's domains are small.
QUICK_PER_CLASS: dict[int, dict[str, int]] = {
    2: {
        "emoji": 2,
        **dict.fromkeys(["characters", "letters", "symbols"], 5),
        **{"digits": 7, "photos": 8, "textures": 22, "faces": 32},
    }
}


def _common(seed: int, settings: Settings) -> list[str]:
    return [*_quick(settings), f"run.seed={seed}", *settings.extra]


def _quick(settings: Settings) -> list[str]:
    """``--quick``'s overrides: ``demo --quick``'s, and on version 2 the per-class subsets."""
    if not settings.quick:
        return []
    caps = QUICK_PER_CLASS.get(settings.version, {})
    return [*QUICK, *(f"data.train_per_class.{name}={n}" for name, n in caps.items())]


def _add_pretraining(stages: dict[Path, Stage], row: Row, seed: int, settings: Settings) -> None:
    backbone, method = row.pretraining
    init = _source_init(backbone, method, seed, settings)
    if init != pretrain_folder(settings.out, backbone, method, seed) or init in stages:
        return
    overrides = [f"model.source={backbone}", f"model.method={method}", *_common(seed, settings)]
    config = stage_config(recipe("pretrain", settings.version), settings.data_root, overrides)
    label = f"pretrain {backbone} ({method}) seed {seed}"
    stages[init] = Stage(label, init, config, None, seed, (backbone, method))


def _source_init(backbone: str, method: str, seed: int, settings: Settings) -> str | Path:
    return source_init(backbone, method, seed, settings.version, settings.out, settings.quick)


def row_stage(row: Row, seed: int, settings: Settings) -> Stage:
    """The stage that trains ``row`` for ``seed`` (its ``model.init`` set by where it starts)."""
    overrides = [*row.overrides, *_start(row, seed, settings), *_common(seed, settings)]
    config = stage_config(row_recipe(row, settings.version), settings.data_root, overrides)
    folder = row_folder(settings.out, row.name, seed)
    return Stage(f"{row.name} seed {seed}", folder, config, row.name, seed)


def _start(row: Row, seed: int, settings: Settings) -> list[str]:
    """``model.init`` of the row: another row's trained model, or its backbone's pretraining
    (for ``scratch`` too, whose targets then start from random init: ``model.new_domains``)."""
    if row.after is not None:
        return [f"model.init={row_folder(settings.out, row.after, seed)}"]
    if row.pretraining is None:
        raise ConfigError(f"row {row.name!r} starts from {row.init!r}: no known starting point")
    backbone, method = row.pretraining
    return [f"model.init={_source_init(backbone, method, seed, settings)}"]
