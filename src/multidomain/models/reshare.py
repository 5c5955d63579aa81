"""Apply a method to a trained model of another method, keeping every domain's function.

Each domain's *view* of the network (the shared tensors plus its own) is a complete
single-domain network. Re-sharing builds the model under the new method and fills every
per-domain tensor from that domain's view; a tensor that becomes shared is taken from the view of
``source_domain``; a tensor the new method adds (in no view) keeps the initialisation the method
gave it, except residual adapters' convolutions, which start at zero so that the domain computes
what it computed before (a plain network converted to series or parallel adapters is exact for
every domain; domains added afterwards get fresh adapters). Soft-sharing gates keep the official
initialisation. Going from ``pointwise`` to ``none`` (independent networks, e.g. to fine-tune
every parameter per domain) is exact for every domain.
"""

from __future__ import annotations

import copy
import dataclasses

import torch

from multidomain.layers.adapters import ADAPTER_ROLE
from multidomain.models._registry import build_model
from multidomain.models.base import MultiDomainNet
from multidomain.models.packs import domain_state_dict, shared_state_dict
from multidomain.models.roles import named_parameter_info


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
    added: set[int] = set()  # ids of the tensors the new method adds
    for key, target in shared_state_dict(result, keep_vars=True).items():
        _fill(target, views[source_domain], key, added)
    for domain in result.domains:
        for key, target in domain_state_dict(result, domain, keep_vars=True).items():
            _fill(target, views[domain], key, added)
    for _, param, info in named_parameter_info(result):
        if info.role == ADAPTER_ROLE and id(param) in added:
            param.zero_()  # the domain computes what it computed before
    result.cards = dict(model.cards)
    return result


def _fill(target: torch.Tensor, view: dict[str, torch.Tensor], key: str, added: set) -> None:
    if key in view:
        target.copy_(view[key])
    else:  # a tensor the new method adds
        added.add(id(target))
