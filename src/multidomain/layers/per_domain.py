"""Per-domain module containers, the add/remove-domain protocol, roles, and the routing of a
batch to its domains.

A :class:`PerDomain` holds one copy of a module per domain, keyed by the domain's name, so the
state-dict keys say by themselves who owns a tensor (``...conv_dw.svhn.weight``). A :class:`Route`
says which domain each part of the batch belongs to; every domain-aware layer takes it as an
argument or reads it from the context (:func:`routing`), so layers inside foreign blocks that
call ``self.conv_dw(x)`` work too.

Every layer that keeps per-domain state is a :class:`DomainAware`: the model calls its
``add_domain`` / ``remove_domain`` when a domain comes or goes (the pattern of PEFT's tuner
layers), so a layer with cross-domain state (a gate with one output per domain) handles it
itself. Layers declare the role of their parameters (:func:`declare_role`), which freezing,
optimizer groups and accounting read (``models.roles``).

Mixed batches: the model sorts the samples by domain once, at its entry, so each domain is one
contiguous slice. Shared layers then run once on the whole batch and a per-domain layer runs its
domain's module on each slice: the trunk is traversed once, whatever the number of domains. In
training mode each slice's batch norm uses that domain's own batch statistics.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from multidomain.errors import ConfigError
from multidomain.layers.mixed_batch import mixed_eval

# -- roles ------------------------------------------------------------------------------------
ROLE_ATTRIBUTE = "multidomain_role"


def declare_role(module: nn.Module, role: str) -> nn.Module:
    """Mark ``module``'s own parameters as having ``role`` (``depthwise``, ``norm``, ...);
    copies made for new domains keep the mark. Returns ``module``."""
    setattr(module, ROLE_ATTRIBUTE, role)
    return module


def declared_role(module: nn.Module) -> str | None:
    return getattr(module, ROLE_ATTRIBUTE, None)


@dataclass(frozen=True)
class Route:
    """Which domain owns which samples of a (sorted) batch.

    Attributes:
        segments: ``(domain, start, stop)`` for each domain present, in batch order.
        order: permutation that sorted the caller's batch by domain (``None`` if untouched).
    """

    segments: tuple[tuple[str, int, int], ...]
    order: torch.Tensor | None = None

    @property
    def single(self) -> str | None:
        """The domain when the whole batch belongs to one, else ``None``."""
        return self.segments[0][0] if len(self.segments) == 1 else None

    @property
    def sizes(self) -> list[int]:
        """Number of samples of each segment."""
        return [stop - start for _, start, stop in self.segments]

    def segment_index(self, device: torch.device) -> torch.Tensor:
        """The position of each sample's segment, ``(B,)``; computed once per route and
        device, since every per-domain layer of a forward pass asks for it."""
        cache = self.__dict__.setdefault("_segment_index", {})  # frozen: bypass __setattr__
        if device not in cache:
            sizes = torch.tensor(self.sizes, device=device)
            cache[device] = torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes)
        return cache[device]

    @classmethod
    def for_domain(cls, domain: str, batch_size: int) -> Route:
        return cls(segments=((domain, 0, batch_size),))

    @classmethod
    def for_samples(cls, domains: Sequence[str], known: Sequence[str]) -> Route:
        """Route a batch whose samples name their own domain (one name per sample).

        The samples are sorted by the domain's position in ``known`` (stable, so samples of one
        domain keep their order).
        """
        position = {name: i for i, name in enumerate(known)}
        keys = torch.tensor([position[name] for name in domains])
        if bool((keys == keys[0]).all()):
            return cls.for_domain(domains[0], len(domains))
        sorted_keys, order = torch.sort(keys, stable=True)
        values, counts = torch.unique_consecutive(sorted_keys, return_counts=True)
        segments, start = [], 0
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            segments.append((known[value], start, start + count))
            start += count
        return cls(segments=tuple(segments), order=order)

    def unsort(self, out: torch.Tensor) -> torch.Tensor:
        """Put rows computed in sorted order back into the caller's order."""
        if self.order is None:
            return out
        restored = torch.empty_like(out)
        restored[self.order] = out
        return restored


# -- the route of the batch in flight ---------------------------------------------------------
_ROUTE: ContextVar[Route | None] = ContextVar("multidomain_route", default=None)


@contextlib.contextmanager
def routing(route: Route) -> Iterator[Route]:
    """Make ``route`` the one layers read (:func:`current_route`) inside the ``with`` block;
    the previous one is restored on exit, exceptions included."""
    token = _ROUTE.set(route)
    try:
        yield route
    finally:
        _ROUTE.reset(token)


def current_route() -> Route:
    """The route set by :func:`routing` (the model's ``forward`` sets it)."""
    route = _ROUTE.get()
    if route is None:
        raise ConfigError(
            "a per-domain layer ran with no domain set: call the model with domain=NAME, or "
            "wrap the call in `with model.routing(NAME):`"
        )
    return route


class Routed(nn.Module):
    """Marker base class: a layer whose ``forward`` takes ``(x, route)``."""


class DomainAware:
    """The protocol of layers with per-domain state: the model calls these on every such layer
    when a domain is added or removed. ``domain`` holds what a layer may need about the new
    domain (``num_classes``, ``dropout``); most layers ignore it."""

    def add_domain(self, name: str, init_from: str | None = None, **domain: Any) -> None:
        raise NotImplementedError

    def remove_domain(self, name: str) -> None:
        raise NotImplementedError


class PerDomain(nn.ModuleDict, Routed, DomainAware):
    """One module per domain. ``forward(x, route)`` runs each domain's module on its samples
    (``route`` defaults to the context's, see :func:`routing`).

    In eval mode a mixed batch takes a fast path where the layer type has one
    (``layers.mixed_batch``: batch norm, depthwise conv); ``fast_mixed = False`` (see
    :func:`use_fast_mixed`) keeps the general split-and-concatenate path, the reference that
    tests and benchmarks compare against.
    """

    fast_mixed = True
    # True: a new domain's module always starts from fresh initialisation, even when the model
    # adds the domain ``init_from`` another (residual adapters, as in the official code, which
    # copies a new task's 3x3 convs and block BNs from the source network but not its adapters)
    fresh_on_add = False
    # how a module starts so that its domain computes what it computed without it (residual
    # adapters: a zero output); ``reshare`` applies it to the domains a converted model already
    # had, so converting keeps their function. None: the module keeps its initialisation.
    neutral_init: Callable[[nn.Module], None] | None = None

    def forward(self, x: torch.Tensor, route: Route | None = None) -> torch.Tensor:
        route = route or current_route()
        domain = route.single
        if domain is not None:
            return self[domain](x)
        modules = [self[name] for name, _, _ in route.segments]
        fast = mixed_eval(modules, x, route) if self.fast_mixed else None
        if fast is not None:  # eval mode: one call for the whole batch
            return fast
        parts = x.split(route.sizes)  # one backward op (a cat), not one zero-fill per slice
        return torch.cat([module(part) for module, part in zip(modules, parts, strict=True)])

    def add_domain(self, name: str, init_from: str | None = None, **domain: Any) -> None:
        """Add ``name``: a copy of ``init_from``'s module, or a freshly initialised one (always
        fresh where ``fresh_on_add``)."""
        template = self[init_from] if init_from is not None else next(iter(self.values()))
        module = copy.deepcopy(template)
        if init_from is None or self.fresh_on_add:
            module.apply(init_weights)
        self[name] = module

    def remove_domain(self, name: str) -> None:
        del self[name]


def use_fast_mixed(model: nn.Module, enabled: bool) -> None:
    """Turn the eval-mode fast path for mixed batches on or off in every per-domain container
    of ``model`` (off: the general path, for comparisons)."""
    for module in model.modules():
        if isinstance(module, PerDomain):
            module.fast_mixed = enabled


def route_call(module: nn.Module, x: torch.Tensor, route: Route) -> torch.Tensor:
    """Call a layer that is either routed (per-domain or composite) or a plain shared module."""
    return module(x, route) if isinstance(module, Routed) else module(x)


def per_domain_or_shared(make: callable, domains: Sequence[str], shared: bool) -> nn.Module:
    """A shared module, or a :class:`PerDomain` with one independent copy per domain."""
    if shared:
        return make()
    return PerDomain({name: make() for name in domains})


def depthwise_conv(channels: int, stride: int) -> nn.Conv2d:
    """3x3 depthwise convolution (one filter per channel; the stride sits here)."""
    conv = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)
    return declare_role(conv, "depthwise")


def pointwise_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return declare_role(nn.Conv2d(in_channels, out_channels, 1, bias=False), "pointwise")


def conv3x3(in_channels: int, out_channels: int, stride: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
    return declare_role(conv, "conv")


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return declare_role(nn.BatchNorm2d(channels), "norm")


@torch.no_grad()
def init_weights(module: nn.Module) -> None:
    """The official code's initialisation (PAPER.md section 2).

    Convolutions: normal(0, sqrt(2 / (k * k * out_channels))); batch norm: weight 1, bias 0 and
    fresh running statistics; linear layers and layer/group norms (converted networks):
    PyTorch's default.
    """
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        module.weight.normal_(0.0, (2.0 / fan_out) ** 0.5)
        if module.bias is not None:
            module.bias.zero_()
    elif isinstance(
        module, (nn.modules.batchnorm._BatchNorm, nn.Linear, nn.LayerNorm, nn.GroupNorm)
    ):
        module.reset_parameters()
