"""Builders of the training run: model, trainable parameters, optimizer, learning rate.

Each returns one object; parameter groups by owner come from ``models.roles`` (one helper).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from torch import nn, optim

from multidomain.data.benchmark import Benchmark
from multidomain.engine.config import ModelSection, TrainConfig, checked_method_options
from multidomain.engine.pretrained import is_shipped, shipped_model_dir
from multidomain.errors import ConfigError
from multidomain.models import ModelConfig, MultiDomainNet
from multidomain.models import build_model as build_registered
from multidomain.models.config import ModelSpec
from multidomain.models.packs import load_model
from multidomain.models.reshare import reshare
from multidomain.models.roles import named_parameter_info, select_parameters

logger = logging.getLogger(__name__)


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model folder (``config.json`` inside), a run folder (its ``model/``) or
    ``shipped:NAME``, pretrained weights shipped with the package (``engine.pretrained``)."""
    if is_shipped(path):
        return shipped_model_dir(str(path))
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"no model at {path}: expected a run folder with model/config.json (a finished "
        "`multidomain train` run) or a folder written by save_model"
    )


def build_model(config: TrainConfig, benchmark: Benchmark) -> MultiDomainNet:
    """The model a recipe starts from (fresh, or the pretrained one with new domains)."""
    classes = {d: benchmark.domain(d).num_classes for d in config.data.domains}
    dropout = {d: p for d, p in config.optim.dropout_per_domain.items() if d in classes}
    section = config.model
    if not section.init:
        spec = {f.name: getattr(section, f.name) for f in dataclasses.fields(ModelSpec)}
        return build_registered(ModelConfig(domains=classes, dropout=dropout, **spec))
    model = load_model(resolve_model_dir(section.init))
    _check_pretrained(model, config)
    source = section.init_domain or next(iter(model.domains))
    model = _apply_method(model, section, source)
    for domain, num_classes in classes.items():
        if domain in model.domains and model.domains[domain] != num_classes:
            raise ValueError(
                f"the pretrained model's domain {domain!r} has {model.domains[domain]} classes, "
                f"the data has {num_classes}: it is another dataset; rename one of them"
            )
        if domain not in model.domains:
            seed = source if section.new_domains == "source" else None  # None: fresh
            model.add_domain(domain, num_classes, init_from=seed, dropout=dropout.get(domain, 0))
    return model


def _apply_method(model: MultiDomainNet, section: ModelSection, source: str) -> MultiDomainNet:
    """The pretrained ``model`` under ``model.method`` (default: its own) and
    ``model.method_options`` (default: the method's), re-shared when either differs."""
    method = section.method or model.config.method
    wanted = checked_method_options(dataclasses.replace(section, method=method))
    if (method, wanted) == (model.config.method, model.config.method_options):
        return model
    logger.info("re-sharing the pretrained model: %s -> %s", model.config.method, method)
    return reshare(model, method, source_domain=source, method_options=wanted)


def _check_pretrained(model: MultiDomainNet, config: TrainConfig) -> None:
    if model.config.source != config.model.source:
        raise ValueError(
            f"model.init holds a {model.config.source} but model.source is "
            f"{config.model.source}: set model.source={model.config.source} or start from a "
            f"{config.model.source}"
        )
    if model.config.width != config.model.width:
        raise ValueError(
            f"model.init has width {model.config.width} but model.width is "
            f"{config.model.width}: set model.width={model.config.width}"
        )
    init_domain = config.model.init_domain
    if init_domain is not None and init_domain not in model.domains:
        raise ValueError(
            f"model.init_domain {init_domain!r} is not in the pretrained model "
            f"(domains: {list(model.domains)})"
        )


def trainable_parameters(model: MultiDomainNet, config: TrainConfig) -> list[nn.Parameter]:
    """Set ``requires_grad`` on what ``optim.train`` selects (by owner and role, see
    ``models.roles.selected``) and return those parameters.

    Raises:
        ConfigError: when the selection picks no parameter (naming the roles there are).
    """
    picked = select_parameters(model, config.optim.train, config.data.domains)
    if not picked:
        roles = sorted({i.role for _, _, i in named_parameter_info(model)})
        raise ConfigError(
            f"optim.train={config.optim.train} selects no parameter of this model "
            f"(method {model.config.method!r}); its roles: {roles}, plus shared.<role>"
        )
    keep = {id(p) for _, p, _ in picked}
    for param in model.parameters():
        param.requires_grad_(id(param) in keep)
    return [p for p in model.parameters() if p.requires_grad]


def trains_shared(model: MultiDomainNet) -> bool:
    """Whether any shared (domain-less) parameter is trained."""
    return any(p.requires_grad and i.domain is None for _, p, i in named_parameter_info(model))


def build_optimizer(model: MultiDomainNet, config: TrainConfig) -> optim.Optimizer:
    """SGD with momentum; one parameter group per owner (shared, or a domain) so each domain
    gets its own weight decay (PAPER.md section 4), split by role when
    ``optim.weight_decay_per_role`` sets one (a domain's own decay wins over its role's)."""
    by_role = config.optim.weight_decay_per_role
    groups: dict[tuple[str | None, str | None], list[nn.Parameter]] = {}
    for _, param, info in named_parameter_info(model):
        if param.requires_grad:
            key = (info.domain, info.role if by_role else None)
            groups.setdefault(key, []).append(param)
    per_domain = config.optim.weight_decay_per_domain
    return optim.SGD(
        [
            {
                "params": params,
                "owner": owner or "shared",
                "weight_decay": per_domain.get(owner, by_role.get(role, config.optim.weight_decay)),
            }
            for (owner, role), params in groups.items()
        ],
        lr=config.optim.lr,
        momentum=config.optim.momentum,
    )


def build_scheduler(config: TrainConfig):
    """``lr_at(epoch)``: step decay by ``lr_gamma`` at each of ``lr_milestones`` (epochs).

    A pure function of the epoch, so a resumed run needs no scheduler state.
    """

    def lr_at(epoch: int) -> float:
        passed = sum(1 for milestone in config.optim.lr_milestones if epoch >= milestone)
        return config.optim.lr * config.optim.lr_gamma**passed

    return lr_at
