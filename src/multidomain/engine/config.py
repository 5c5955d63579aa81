"""Run configuration: dataclasses validated on creation, loaded from YAML, overridden by
``--set section.key=value``, and saved resolved into the run folder (forced on resume).

Recipes (PAPER.md section 4):

- ``pretrain``: the whole network on the source domain(s);
- ``adapt``: from a pretrained model, a new head per target domain; only what each target owns
  trains (depthwise, BN, head and the last pointwise under ``share="pointwise"``), per-domain
  weight decay and dropout. With ``model.share="none"`` this is full fine-tuning per domain
  (the Decathlon baseline); with ``"all"`` BN adaptation (``optim.train_norm=false``: the
  feature extractor);
- ``joint``: every domain trained together, one domain per batch, on a seeded schedule.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECIPES = ("pretrain", "adapt", "joint")
SCHEDULES = ("proportional", "round_robin")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class DataConfig:
    root: str = "mini-decathlon"  # a devkit tree; relative paths resolve against the cwd
    prepare_offline: bool = False  # build the mini-decathlon at ``root`` when it is missing
    offline_image_size: int = 72  # shorter side of the images of that build
    domains: list[str] = field(default_factory=list)
    protocol: str = "train"  # train (validate on val) | trainval (challenge protocol)
    batch_size: int = 64
    eval_batch_size: int = 128
    workers: int | None = None  # None: 0 on the CPU, CPU count - 1 with a GPU
    skip_bad: bool = False
    # keep decoded training and validation images in memory, decoding each file once:
    # auto = when loading runs in the training process and they fit in cache_limit_gb
    cache_images: bool | str = "auto"
    cache_limit_gb: float = 2.0

    def __post_init__(self) -> None:
        if self.protocol not in ("train", "trainval"):
            raise ValueError(f"data.protocol must be 'train' or 'trainval', got {self.protocol!r}")
        if self.cache_images not in (True, False, "auto"):
            raise ValueError(
                f"data.cache_images must be true, false or auto, got {self.cache_images!r}"
            )
        _positive("data.cache_limit_gb", self.cache_limit_gb)
        _positive("data.batch_size", self.batch_size)
        _positive("data.eval_batch_size", self.eval_batch_size)


@dataclass
class ModelSection:
    name: str = "resnet26_dw"
    width: float = 1.0
    share: str | None = None  # None: the model's default (adapt: the pretrained model's)
    own_last_pointwise: bool = True
    channels_last: bool = True
    init: str | None = None  # pretrained run folder or model folder (required by adapt)
    init_domain: str | None = None  # domain of ``init`` that seeds new domains (default: first)


@dataclass
class OptimConfig:
    epochs: int = 10
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    weight_decay_per_domain: dict[str, float] = field(default_factory=dict)
    dropout_per_domain: dict[str, float] = field(default_factory=dict)
    lr_milestones: list[int] = field(default_factory=list)  # epochs at which lr *= lr_gamma
    lr_gamma: float = 0.1
    train_norm: bool = True  # adapt: train the domain's BN parameters

    def __post_init__(self) -> None:
        _positive("optim.epochs", self.epochs)
        _positive("optim.lr", self.lr)
        if sorted(self.lr_milestones) != list(self.lr_milestones):
            raise ValueError(f"optim.lr_milestones must be increasing, got {self.lr_milestones}")


@dataclass
class RunConfig:
    seed: int = 0
    schedule: str = "proportional"  # joint: proportional | round_robin
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; GradScaler only for fp16)
    checkpoint_every: int = 500  # steps; a checkpoint is also written at every epoch end
    max_steps: int | None = None  # stop early (smoke runs); the run can be resumed later
    log_every: int = 20
    tensorboard: bool = False
    bn_guard: bool = True  # detect the eval-mode batch-norm collapse and re-estimate BN
    progress: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"run.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"run.precision must be one of {PRECISIONS}, got {self.precision!r}")
        _positive("run.checkpoint_every", self.checkpoint_every)


@dataclass
class TrainConfig:
    recipe: str = "pretrain"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        if not self.data.domains:
            raise ValueError("data.domains is empty: list the domains to train, e.g. [svhn, dtd]")
        if self.recipe == "adapt" and not self.model.init:
            raise ValueError(
                "recipe 'adapt' needs model.init: the pretrained run folder "
                "(e.g. --set model.init=runs/pretrain)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {"data": DataConfig, "model": ModelSection, "optim": OptimConfig, "run": RunConfig}


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def config_from_dict(data: dict[str, Any], origin: str = "config") -> TrainConfig:
    """Build a validated :class:`TrainConfig`; unknown keys are errors that list the known ones."""
    unknown = set(data) - {"recipe", *_SECTIONS}
    if unknown:
        raise ValueError(
            f"{origin}: unknown key(s) {sorted(unknown)}; top-level keys: recipe, "
            + ", ".join(_SECTIONS)
        )
    sections = {}
    for name, cls in _SECTIONS.items():
        values = data.get(name) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        bad = set(values) - known
        if bad:
            raise ValueError(
                f"{origin}: unknown key(s) {sorted(f'{name}.{k}' for k in bad)}; "
                f"{name} keys: {sorted(known)}"
            )
        sections[name] = cls(**values)
    return TrainConfig(recipe=data.get("recipe", "pretrain"), **sections)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a config dict."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"bad --set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
        value = _parse_value(raw)
        parts = key.split(".")
        if len(parts) == 1:
            data[key] = value
        elif len(parts) == 2 and parts[0] in _SECTIONS:
            data.setdefault(parts[0], {})[parts[1]] = value
        else:
            raise ValueError(
                f"bad --set key {key!r}: use 'recipe' or SECTION.KEY with SECTION in "
                f"{sorted(_SECTIONS)}"
            )
    return data


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2 numbers: PyYAML (YAML 1.1) reads ``1e-3`` as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _parse_value(raw: str) -> Any:
    return yaml.load(raw, Loader=_Loader) if raw else None


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        data = yaml.load(path.read_text(), Loader=_Loader) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config is a YAML mapping of sections")
    return config_from_dict(apply_overrides(data, list(overrides)), origin=str(path or "config"))


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
