"""Apply a method to a trained model of another method, keeping every domain's function.

Each domain's *view* of the network (the shared tensors plus its own) is a complete
single-domain network. Re-sharing builds the model under the new method and fills every
per-domain tensor from that domain's view; a tensor that becomes shared is taken from the view of
``source_domain``; a tensor the new method adds (in no view) keeps the initialisation the method
gave it, unless its layer says how it starts so that the domain computes what it computed before
(``PerDomain.neutral_init``: residual adapters start at zero output, so a plain network converted
to series or parallel adapters is exact for every domain). Soft-sharing gates keep the official
initialisation. Going from ``pointwise`` to ``none`` (independent networks, e.g. to fine-tune
every parameter per domain) is exact for every domain.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from multidomain.models._registry import build_model
from multidomain.models.base import MultiDomainNet
from multidomain.models.packs import domain_state_dict, shared_state_dict


def domain_view(model: MultiDomainNet, domain: str) -> dict[str, torch.Tensor]:
    """``domain``'s single-domain network: shared tensors and its own, keys without names."""
    return {**shared_state_dict(model), **domain_state_dict(model, domain)}


@torch.no_grad()
def reshare(
    model: MultiDomainNet,
    method: str,
    source_domain: str | None = None,
    method_options: dict | None = None,
) -> MultiDomainNet:
    """A copy of ``model`` under ``method`` (with its ``method_options``; default: the
    method's defaults), see the module docstring."""
    source_domain = source_domain or next(iter(model.domains))
    model._check_domain(source_domain)
    config = dataclasses.replace(
        copy.deepcopy(model.config), method=method, method_options=dict(method_options or {})
    )
    result = build_model(config)
    views = {domain: domain_view(model, domain) for domain in model.domains}
    for key, target in shared_state_dict(result, keep_vars=True).items():
        _fill(target, views[source_domain], key)
    for domain in result.domains:
        for key, target in domain_state_dict(result, domain, keep_vars=True).items():
            _fill(target, views[domain], key)
        _start_added_modules_neutral(result, domain, views[domain])
    result.cards = dict(model.cards)
    return result


def _fill(target: torch.Tensor, view: dict[str, torch.Tensor], key: str) -> None:
    if key in view:  # else a tensor the new method adds: it keeps its initialisation
        target.copy_(view[key])


def _start_added_modules_neutral(
    model: MultiDomainNet, domain: str, view: dict[str, torch.Tensor]
) -> None:
    """``neutral_init`` on each of ``domain``'s modules that the new method adds."""
    for path, container in model.per_domain_modules():
        if container.neutral_init is None or domain not in container:
            continue
        keys = [f"{path}.{key}" for key in container[domain].state_dict()]
        if not any(key in view for key in keys):
            container.neutral_init(container[domain])
