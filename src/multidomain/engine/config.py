"""Run configuration: dataclasses validated on creation, loaded from YAML, overridden by
``--set section.key=value``, and saved resolved into the run folder (forced on resume).

Recipes (PAPER.md section 4):

- ``pretrain``: the whole network on the source domain(s);
- ``adapt``: from a pretrained model, a new head per target domain; only what each target owns
  trains (depthwise, BN, head and the last pointwise under the ``pointwise`` method), per-domain
  weight decay and dropout. With ``model.method=none`` this is full fine-tuning per domain
  (the Decathlon baseline); with ``"all"`` BN adaptation (``optim.train_norm=false``: the
  feature extractor);
- ``joint``: every domain trained together, one domain per batch, on a seeded schedule.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from multidomain.domains import validate_domain_name
from multidomain.engine.config_types import describe, has_type
from multidomain.errors import ConfigError, InputNotFound
from multidomain.models import list_models
from multidomain.models._registry import check_source, list_sources
from multidomain.models.config import LEGACY_KEYS, ModelSpec, upgrade_legacy_keys
from multidomain.models.methods import get_method, list_methods

TRAIN_SELECTOR = re.compile(r"^(all|shared|(shared\.)?[a-z][a-z0-9_]*)$")
RECIPES = ("pretrain", "adapt", "joint")
SCHEDULES = ("proportional", "round_robin")
PRECISIONS = ("fp32", "bf16", "fp16")
PROTOCOLS = ("train", "trainval")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


@dataclass
class DataConfig:
    root: str = "mini-decathlon"  # a devkit tree; relative paths resolve against the cwd
    prepare_offline: bool = False  # build the mini-decathlon at ``root`` when it is missing
    offline_image_size: int = 72  # shorter side of the images of that build
    offline_version: int = 1  # mini-decathlon version of that build (README, "Data")
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
    # domain -> at most this many training images a class, the first of each class in the
    # split's order (a fixed subset; compare --quick trains on a subset of the source this way)
    train_per_class: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_section(self, "data")


NEW_DOMAINS = ("source", "random")  # how the domains a pretrained model lacks start


@dataclass(kw_only=True)
class ModelSection(ModelSpec):
    """The network and method (:class:`~multidomain.models.config.ModelSpec`: ``source``,
    ``width``, ``method``, ``method_options``, ``channels_last``) and where the weights start.

    ``method`` None: the model's default, or with ``init`` the pretrained model's method.
    """

    init: str | None = None  # pretrained run folder or model folder (required by adapt)
    init_domain: str | None = None  # domain of ``init`` that seeds new domains (default: first)
    # how the domains that ``init`` lacks start: "source" (copies of init_domain's layers, i.e.
    # fine-tuning) or "random" (fresh: with method none, each new domain is a network trained
    # from scratch, as the Decathlon's scratch row, while init's domains stay as they are)
    new_domains: str = "source"

    def __post_init__(self) -> None:
        validate_section(self, "model")
        if self.method is not None:
            checked_method_options(self)


def checked_method_options(spec: ModelSpec) -> dict[str, Any]:
    """``spec``'s resolved method options; a refusal names the setting ``model.method_options``."""
    try:
        return spec.resolved_method_options()
    except ConfigError as err:
        raise ConfigError(f"model.method_options: {err}") from None


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
    # What trains, by owner and role: a role name selects that role among the parameters the
    # run's domains own (``pointwise`` then means a domain's own last pointwise only);
    # ``shared.<role>`` selects shared parameters of that role, ``shared`` all shared ones,
    # ``all`` everything. None: the recipe's default (``RECIPE_TRAINS``), written into the run.
    train: list[str] | None = None
    train_norm: bool = True  # false drops ``norm`` from the default (the feature extractor)
    weight_decay_per_role: dict[str, float] = field(default_factory=dict)  # e.g. {norm: 0}

    def __post_init__(self) -> None:
        validate_section(self, "optim")


@dataclass
class RunConfig:
    seed: int = 0
    schedule: str = "proportional"  # joint: proportional | round_robin
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; GradScaler only for fp16)
    checkpoint_every: int = 500  # steps; a checkpoint is also written at every epoch end
    max_steps: int | None = None  # stop early (smoke runs); the run can be resumed later
    log_every: int = 20
    tensorboard: bool = False
    bn_guard: bool = True  # detect the eval-mode batch-norm collapse and re-estimate BN
    progress: bool = True
    threads: int | None = None  # torch intra-op threads; None: torch's default
    # torchrun jobs: seconds a rank waits for the others in a collective before the job ends
    # with an error (a rank died or hung); longer than the slowest checkpoint save or validation
    dist_timeout: float = 600.0
    # torch.compile the training and evaluation model (GPU runs; the first steps of each
    # domain compile, later ones are faster); dynamo's recompile limit is raised to the domains
    compile: bool = False

    def __post_init__(self) -> None:
        validate_section(self, "run")


@dataclass
class TrainConfig:
    recipe: str = "pretrain"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        check_setting("recipe", self.recipe, str)
        if not self.data.domains:
            raise ConfigError(
                "data.domains must be a non-empty list of the domains to train, e.g. "
                "[svhn, dtd], got []"
            )
        if self.recipe == "adapt" and not self.model.init:
            raise ConfigError(
                "recipe 'adapt' needs model.init: the pretrained run folder "
                "(e.g. --set model.init=runs/pretrain)"
            )
        if self.optim.train is None:
            defaults = default_trains(self.recipe, self.model.method)
            self.optim.train = [s for s in defaults if self.optim.train_norm or s != "norm"]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# What each recipe trains unless ``optim.train`` says otherwise: pretraining and joint training
# everything; adaptation what the target domains own (every role a method gives them).
RECIPE_TRAINS = {
    "pretrain": ["all"],
    "joint": ["all"],
    "adapt": ["depthwise", "pointwise", "conv", "norm", "head", "other"],
}


def default_trains(recipe: str, method: str | None) -> list[str]:
    """What ``recipe`` trains when ``optim.train`` is unset: ``RECIPE_TRAINS``, except that a
    recipe training what the domains own takes the method's own default (``Method.trains``)
    when the method is named (``model.method``; with ``null`` the generic default holds)."""
    defaults = RECIPE_TRAINS.get(recipe, ["all"])
    trains = get_method(method).trains if method and defaults != ["all"] else None
    return list(trains) if trains is not None else defaults


_SECTIONS = {"data": DataConfig, "model": ModelSection, "optim": OptimConfig, "run": RunConfig}


# -- validation: every field's type from its annotation, then its range ----------------------
def _finite(value: float) -> bool:
    return math.isfinite(value)


def _is_name(name: str) -> bool:
    try:
        validate_domain_name(name)
    except ValueError:
        return False
    return True


def _is_source(source: str) -> bool:
    try:
        check_source(source)
    except ConfigError:
        return False
    return True


def _milestones_ok(epochs: list[int]) -> bool:
    return all(e >= 1 for e in epochs) and sorted(epochs) == epochs


def _offline_versions() -> tuple[int, ...]:
    from multidomain.data.offline import VERSIONS  # its sources load only when asked

    return tuple(VERSIONS)


# key -> (check of a value of the right type, what is expected); None values of ``X | None``
# fields skip the check (None is their documented default)
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "recipe": (lambda v: v in RECIPES, f"one of {RECIPES}"),
    "data.root": (lambda v: bool(v.strip()), "a non-empty path to a devkit tree"),
    "data.offline_image_size": (lambda v: v >= 8, "an integer >= 8"),
    "data.offline_version": (lambda v: v in _offline_versions(), "1 or 2"),
    "data.domains": (
        lambda v: all(map(_is_name, v)) and len(set(v)) == len(v),
        "a list of distinct domain names (letters, digits, '_' and '-', starting with a "
        "letter), e.g. [digits, textures]",
    ),
    "data.protocol": (lambda v: v in PROTOCOLS, f"one of {PROTOCOLS}"),
    "data.batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "data.eval_batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "data.workers": (lambda v: v >= 0, "an integer >= 0 or null (automatic)"),
    "data.cache_images": (lambda v: v in (True, False, "auto"), "true, false or auto"),
    "data.cache_limit_gb": (lambda v: _finite(v) and v > 0, "a number > 0"),
    "data.train_per_class": (
        lambda v: all(_is_name(k) and x >= 1 for k, x in v.items()),
        "a mapping of domain name to an integer >= 1, e.g. {emoji: 2}",
    ),
    "model.source": (
        _is_source,
        f"a registered model ({', '.join(list_models())}) or PREFIX:NAME of a registered "
        f"source ({', '.join(list_sources()) or 'none registered'})",
    ),
    "model.width": (lambda v: _finite(v) and v > 0, "a number > 0"),
    "model.method": (
        lambda v: v in list_methods(),
        f"a registered method ({', '.join(list_methods())}) or null (the model's default)",
    ),
    "model.init": (
        lambda v: bool(v.strip()),
        "a run folder, a model folder, shipped:NAME (multidomain pretrained list) or null",
    ),
    "model.init_domain": (_is_name, "a domain name of model.init, or null (its first)"),
    "model.new_domains": (lambda v: v in NEW_DOMAINS, f"one of {', '.join(NEW_DOMAINS)}"),
    "optim.epochs": (lambda v: v >= 1, "an integer >= 1"),
    "optim.lr": (lambda v: _finite(v) and v > 0, "a number > 0"),
    "optim.momentum": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "optim.weight_decay": (lambda v: _finite(v) and v >= 0, "a number >= 0"),
    "optim.weight_decay_per_domain": (
        lambda v: all(_is_name(k) and _finite(x) and x >= 0 for k, x in v.items()),
        "a mapping of domain name to a number >= 0, e.g. {svhn: 0.001}",
    ),
    "optim.dropout_per_domain": (
        lambda v: all(_is_name(k) and 0 <= x < 1 for k, x in v.items()),
        "a mapping of domain name to a probability in [0, 1), e.g. {gtsrb: 0.5}",
    ),
    "optim.lr_milestones": (_milestones_ok, "increasing epochs >= 1, e.g. [10, 13], or []"),
    "optim.lr_gamma": (lambda v: _finite(v) and v > 0, "a number > 0"),
    "optim.train": (
        lambda v: bool(v) and all(TRAIN_SELECTOR.match(x) for x in v),
        "a non-empty list of roles (depthwise, pointwise, conv, norm, head, ...), "
        "shared.<role>, shared or all, e.g. [depthwise, norm, head]",
    ),
    "optim.weight_decay_per_role": (
        lambda v: all(_is_name(k) and _finite(x) and x >= 0 for k, x in v.items()),
        "a mapping of role to a number >= 0, e.g. {norm: 0}",
    ),
    "run.seed": (lambda v: v >= 0, "an integer >= 0"),
    "run.schedule": (lambda v: v in SCHEDULES, f"one of {SCHEDULES}"),
    "run.device": (lambda v: bool(DEVICE_PATTERN.match(v)), "auto, cpu, cuda, cuda:N or mps"),
    "run.precision": (lambda v: v in PRECISIONS, f"one of {PRECISIONS}"),
    "run.checkpoint_every": (lambda v: v >= 1, "an integer >= 1 (steps)"),
    "run.max_steps": (lambda v: v >= 1, "an integer >= 1, or null (no limit)"),
    "run.log_every": (lambda v: v >= 1, "an integer >= 1 (steps)"),
    "run.threads": (lambda v: v >= 1, "an integer >= 1, or null (torch's default)"),
    "run.dist_timeout": (lambda v: _finite(v) and v > 0, "a number of seconds > 0"),
}


def validate_section(section: object, prefix: str) -> None:
    """Check every field of a config section against its annotation and its rule.

    Raises:
        ConfigError: naming the key (``optim.momentum``), the bad value and what is expected.
    """
    hints = typing.get_type_hints(type(section))
    for item in dataclasses.fields(section):
        check_setting(f"{prefix}.{item.name}", getattr(section, item.name), hints[item.name])


def check_setting(key: str, value: Any, hint: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` has type ``hint`` and passes ``RULES[key]``."""
    check, expected = RULES.get(key, (None, None))
    if not has_type(value, hint):
        hint_text = f"; valid: {expected}" if expected else ""
        raise ConfigError(f"{key} must be {describe(hint)}, got {value!r}{hint_text}")
    if check is not None and value is not None and not check(value):
        raise ConfigError(f"{key} must be {expected}, got {value!r}")


def check_model_init(config: TrainConfig) -> None:
    """``model.init``, when set, must hold a model: a finished run folder or a model folder.

    Called before a run folder is written (``multidomain train``); not on every load, so a
    finished run whose pretrained source moved away can still be evaluated.

    Raises:
        InputNotFound: a :class:`ConfigError` (and ``FileNotFoundError``) naming the folder.
    """
    init = config.model.init
    if init is None:
        return
    from multidomain.engine.builders import resolve_model_dir  # builders imports this module

    try:
        resolve_model_dir(init)
    except FileNotFoundError as err:
        raise InputNotFound(
            f"model.init {init!r}: {err}; finish that run or point model.init at another"
        ) from err


# -- loading: YAML files and --set overrides --------------------------------------------------
def config_from_dict(data: dict[str, Any], origin: str = "config") -> TrainConfig:
    """Build a validated :class:`TrainConfig`; unknown keys are errors that list the known ones."""
    unknown = set(data) - {"recipe", *_SECTIONS}
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key(s) {sorted(map(str, unknown))}; top-level keys: recipe, "
            + ", ".join(_SECTIONS)
        )
    sections = {}
    for name, cls in _SECTIONS.items():
        values = _section_values(data, name, origin)
        if name == "model":  # runs and configs written before source/method
            values = upgrade_legacy_keys(values, f"{origin}: model")
        known = {f.name for f in dataclasses.fields(cls)}
        bad = set(values) - known
        if bad:
            raise ConfigError(
                f"{origin}: unknown key(s) {sorted(f'{name}.{k}' for k in bad)}; "
                f"{name} keys: {sorted(known)}"
            )
        sections[name] = cls(**values)
    return TrainConfig(recipe=data.get("recipe", "pretrain"), **sections)


def _section_values(data: dict[str, Any], name: str, origin: str) -> dict[str, Any]:
    values = data.get(name)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"{origin}: {name} must be a mapping of settings such as {{key: value}}, got {values!r}"
        )
    return values


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to a config dict."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad --set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
        value = _parse_value(raw, f"--set {item}")
        parts = key.split(".")
        if len(parts) == 1:
            data[key] = value
        elif 2 <= len(parts) <= 3 and parts[0] in _SECTIONS:
            section = dict(_section_values(data, parts[0], "config"))
            if parts[0] == "model":
                parts[1] = _current_model_key(section, parts[1])
            if len(parts) == 3:  # one entry of a mapping, e.g. model.method_options.KEY
                value = {**_mapping(section.get(parts[1]), key), parts[2]: value}
            data[parts[0]] = {**section, parts[1]: value}
        else:
            raise ConfigError(
                f"bad --set key {key!r}: use 'recipe', SECTION.KEY or SECTION.KEY.ENTRY with "
                f"SECTION in {sorted(_SECTIONS)}"
            )
    return data


def _current_model_key(section: dict[str, Any], key: str) -> str:
    """``key`` under its current name (``share`` -> ``method``), dropping the other spelling
    from ``section`` so the override replaces it."""
    key = LEGACY_KEYS.get(key, key)
    for old, new in LEGACY_KEYS.items():
        if new == key:
            section.pop(old, None)
    return key


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"bad --set key {key!r}: {key.rsplit('.', 1)[0]} is not a mapping")
    return value


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2 numbers: PyYAML (YAML 1.1) reads ``1e-3`` as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _parse_value(text: str, origin: str) -> Any:
    """``text`` read as YAML; a syntax error is a :class:`ConfigError` naming ``origin``."""
    if not text:
        return None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(
            f"{origin}: not valid YAML{where} ({problem}); quote text that holds "
            "':', '#', '[' or '{', and close every bracket"
        ) from err


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply overrides.

    Raises:
        ConfigError: a missing or unparsable file, an unknown key, or a bad value (named).
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputNotFound(f"config file not found: {path}; give a YAML file or a recipe")
        data = _parse_value(path.read_text(), str(path)) or {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: a config is a YAML mapping of sections (recipe, "
                f"{', '.join(_SECTIONS)}), got {type(data).__name__} {data!r}"
            )
    return config_from_dict(apply_overrides(data, list(overrides)), origin=str(path or "config"))


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
