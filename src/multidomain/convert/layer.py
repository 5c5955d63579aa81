"""The layers the converter puts into a foreign network (PAPER.md section 9).

A foreign block calls ``self.conv_dw(x)`` with no route: the per-domain containers put in its
place (:class:`~multidomain.layers.PerDomain`) read the batch's route from the context that the
converted model's ``forward`` sets. A per-block layer scale is a bare parameter the block reads
as an attribute (``self.layer_scale * x``): :class:`DomainValue` keeps one per domain and a
pair of forward hooks puts the route's value under the attribute for the block's forward only.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from multidomain.layers import DomainHeads, PerDomain, Route, current_route, declare_role
from multidomain.layers.heads import ClassifierHead


def per_domain(module: nn.Module, domains: Sequence[str], role: str) -> PerDomain:
    """One copy of ``module`` per domain (each starts from the original's weights)."""
    declare_role(module, role)
    return PerDomain({name: copy.deepcopy(module) for name in domains})


def domain_heads(
    linear: nn.Linear, domains: dict[str, int], dropout: dict[str, float]
) -> DomainHeads:
    """Per-domain heads in place of ``linear``; a domain with its class count starts from it."""
    heads = {}
    for name, classes in domains.items():
        head = ClassifierHead(linear.in_features, classes, dropout.get(name, 0.0))
        if classes == linear.out_features:
            head.fc.load_state_dict(linear.state_dict())
        heads[name] = head.to(linear.weight.device, linear.weight.dtype)
    return DomainHeads(heads)


class Scale(nn.Module):
    """One domain's copy of a layer-scale parameter."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        declare_role(self, "norm")


class DomainValue(PerDomain):
    """A parameter per domain, read by :meth:`value` (not called like a layer)."""

    def __init__(self, weight: torch.Tensor, domains: Sequence[str], batchable: bool) -> None:
        super().__init__({name: Scale(weight) for name in domains})
        self.batchable = batchable

    def value(self, route: Route) -> torch.Tensor:
        """The route's domain's tensor; for a mixed batch (when ``batchable``) one per sample,
        ``(B, *shape)``, which broadcasts against ``(B, C, H, W)`` where ``shape`` is
        ``(C, 1, 1)``."""
        if route.single is not None:
            return self[route.single].weight
        if not self.batchable:
            raise RuntimeError("a mixed batch reached a layer scale that cannot take one")
        return torch.cat(
            [
                self[name].weight.unsqueeze(0).expand(stop - start, *self[name].weight.shape)
                for name, start, stop in route.segments
            ]
        )


def _put_value(block: nn.Module, args: tuple) -> None:
    for attribute, holder in _values(block):
        block.__dict__[attribute] = holder.value(current_route())  # read before _modules


def _take_value(block: nn.Module, args: tuple, output: object) -> None:
    for attribute, _ in _values(block):
        block.__dict__.pop(attribute, None)  # no tensor (nor its graph) outlives the forward


def _values(block: nn.Module) -> list[tuple[str, DomainValue]]:
    return [(n, m) for n, m in block.named_children() if isinstance(m, DomainValue)]


def make_value_per_domain(
    block: nn.Module, attribute: str, domains: Sequence[str], batchable: bool
) -> None:
    """Replace the parameter ``block.<attribute>`` by a :class:`DomainValue` of that name."""
    weight = block._parameters.pop(attribute)
    block.add_module(attribute, DomainValue(weight, domains, batchable))
    if not any(hook is _put_value for hook in block._forward_pre_hooks.values()):
        block.register_forward_pre_hook(_put_value)
        block.register_forward_hook(_take_value)


def restore_value(block: nn.Module, attribute: str, domain: str) -> None:
    """Undo :func:`make_value_per_domain`, keeping ``domain``'s value."""
    holder = block._modules.pop(attribute)
    block.register_parameter(attribute, nn.Parameter(holder[domain].weight.detach().clone()))
    if not _values(block):
        for hooks, hook in (
            (block._forward_pre_hooks, _put_value),
            (block._forward_hooks, _take_value),
        ):
            for key in [k for k, fn in hooks.items() if fn is hook]:
                del hooks[key]
