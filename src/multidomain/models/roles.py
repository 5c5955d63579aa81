"""Who owns each parameter, and what it is: the one source for freezing, optimizer groups and
parameter accounting. Never read off name substrings: a layer's declared role
(``layers.declare_role``) when it has one, else its structure (the fallback for foreign modules,
which finds a BN nested anywhere, e.g. inside an adapter); the owner is the domain whose key a
:class:`~multidomain.layers.DomainAware` layer holds it under."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from torch import nn

from multidomain.layers import DomainAware, declared_role

ROLES = ("depthwise", "pointwise", "conv", "norm", "head", "other")


@dataclass(frozen=True)
class ParamInfo:
    """``role``: one of ``ROLES``; ``domain``: the owning domain, ``None`` when shared."""

    role: str
    domain: str | None


def module_role(module: nn.Module) -> str:
    """The declared role of ``module``'s own parameters, else the one its structure says."""
    return declared_role(module) or structural_role(module)


def structural_role(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        if module.groups > 1 and module.groups == module.in_channels:
            return "depthwise"
        return "pointwise" if module.kernel_size == (1, 1) else "conv"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "norm"
    if isinstance(module, nn.Linear):
        return "head"
    return "other"


def _walk(
    module: nn.Module, prefix: str, domain: str | None
) -> Iterator[tuple[str, nn.Parameter, ParamInfo]]:
    role = module_role(module)
    for name, param in module.named_parameters(recurse=False):
        yield prefix + name, param, ParamInfo(role, domain)
    for name, child in module.named_children():
        owner = name if isinstance(module, DomainAware) else domain
        yield from _walk(child, f"{prefix}{name}.", owner)


def owned_modules(module: nn.Module, domain: str, owner: str | None = None) -> Iterator[nn.Module]:
    """Every module ``domain`` owns, at any depth (a BN inside an adapter included)."""
    for name, child in module.named_children():
        child_owner = name if isinstance(module, DomainAware) else owner
        if child_owner == domain:
            yield child
        yield from owned_modules(child, domain, child_owner)


def named_parameter_info(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, ParamInfo]]:
    """``(name, parameter, ParamInfo)`` for every parameter of ``model``."""
    yield from _walk(model, "", None)


def domain_parameters(
    model: nn.Module, domain: str, train_norm: bool = True
) -> list[tuple[str, nn.Parameter]]:
    """The parameters trained to adapt ``domain``: everything the domain owns.

    Under the ``pointwise`` method that is its depthwise filters, BNs, head (and last pointwise);
    under ``"depthwise"`` its pointwise convs, BNs and head; under ``"all"`` its BNs and head
    (``train_norm=False``: the head alone, i.e. the feature extractor); under ``"none"``
    its whole network.
    """
    owned = [
        (name, param, info)
        for name, param, info in named_parameter_info(model)
        if info.domain == domain
    ]
    if not owned:
        known = sorted({i.domain for _, _, i in named_parameter_info(model) if i.domain})
        raise ValueError(f"no parameters belong to domain {domain!r}; domains: {known}")
    return [(n, p) for n, p, info in owned if train_norm or info.role != "norm"]


def freeze_for_adaptation(
    model: nn.Module, domain: str, train_norm: bool = True
) -> list[nn.Parameter]:
    """Set ``requires_grad`` on exactly :func:`domain_parameters` and return them."""
    trainable = domain_parameters(model, domain, train_norm)
    keep = {id(p) for _, p in trainable}
    for param in model.parameters():
        param.requires_grad_(id(param) in keep)
    return [p for _, p in trainable]


def selected(info: ParamInfo, selectors: Sequence[str], domains: Sequence[str]) -> bool:
    """Whether a parameter is picked by ``selectors`` (``optim.train``) for a run of ``domains``.

    ``all``: every shared parameter and every one ``domains`` own; ``shared``: every shared one;
    ``shared.<role>``: shared ones of that role; ``<role>``: ones of that role that ``domains``
    own. Other domains' parameters are never picked.
    """
    if info.domain is None:
        return bool({"all", "shared", f"shared.{info.role}"} & set(selectors))
    return info.domain in domains and bool({"all", info.role} & set(selectors))


def select_parameters(
    model: nn.Module, selectors: Sequence[str], domains: Sequence[str]
) -> list[tuple[str, nn.Parameter, ParamInfo]]:
    """``(name, parameter, info)`` of what ``selectors`` pick (see :func:`selected`)."""
    return [
        (name, param, info)
        for name, param, info in named_parameter_info(model)
        if selected(info, selectors, domains)
    ]
