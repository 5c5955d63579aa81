"""The multi-domain network interface shared by every model of the package.

``model(x, domain="svhn")`` runs a batch of one domain; ``model(x, domain=[...])`` (one name per
sample) runs a mixed batch in one pass through the trunk. Domains can be added and removed at run
time: the model calls ``add_domain`` / ``remove_domain`` on every
:class:`~multidomain.layers.DomainAware` layer (per-domain containers, heads, a method's own
layers), which keep their per-domain tensors keyed by the domain's name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from multidomain.domains import validate_domain_name
from multidomain.layers import DomainAware, DomainHeads, PerDomain, Route, routing
from multidomain.models.cards import DomainCard
from multidomain.models.config import ModelConfig


class MultiDomainNet(nn.Module):
    """Base class: subclasses build ``self.head`` (a :class:`DomainHeads`) and the trunk."""

    head: DomainHeads

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # class names and preprocessing per domain, saved in its pack (``models.cards``)
        self.cards: dict[str, DomainCard] = {}

    # -- domains ---------------------------------------------------------------------------
    @property
    def domains(self) -> dict[str, int]:
        """Ordered ``{domain: num_classes}``."""
        return {name: head.num_classes for name, head in self.head.items()}

    def per_domain_modules(self) -> Iterator[tuple[str, PerDomain]]:
        """``(path, module)`` of every per-domain container, the heads included."""
        for path, module in self.named_modules():
            if isinstance(module, PerDomain):
                yield path, module

    def domain_layers(self) -> list[DomainAware]:
        """Every layer that takes part in adding and removing domains, the heads included."""
        return [m for m in self.modules() if isinstance(m, DomainAware)]

    def add_domain(
        self, name: str, num_classes: int, init_from: str | None = None, dropout: float = 0.0
    ) -> None:
        """Add a domain with a new head; its other per-domain layers are copied from
        ``init_from`` or freshly initialised."""
        validate_domain_name(name)
        if name in self.head:
            raise ValueError(f"domain {name!r} already exists; remove_domain({name!r}) first")
        if init_from is not None:
            self._check_domain(init_from)
        for layer in self.domain_layers():
            layer.add_domain(name, init_from, num_classes=num_classes, dropout=dropout)
        self.config.domains[name] = num_classes
        if dropout:
            self.config.dropout[name] = dropout
        self._apply_memory_format()

    def remove_domain(self, name: str) -> None:
        """Delete every tensor that belongs to ``name``."""
        self._check_domain(name)
        if len(self.head) == 1:
            raise ValueError(f"cannot remove {name!r}: it is the model's only domain")
        for layer in self.domain_layers():
            layer.remove_domain(name)
        del self.config.domains[name]
        self.config.dropout.pop(name, None)
        self.cards.pop(name, None)

    def card(self, name: str) -> DomainCard:
        """``name``'s class names and preprocessing (an empty card when unknown)."""
        self._check_domain(name)
        return self.cards.get(name, DomainCard())

    def _check_domain(self, name: object) -> None:
        if name not in self.head:
            raise ValueError(
                f"unknown domain {name!r}; this model's domains are {list(self.head.keys())}"
            )

    # -- forward ---------------------------------------------------------------------------
    def route(self, x: torch.Tensor, domain: str | Sequence[str] | None) -> Route:
        """Validate the input and the domain argument and build the batch's route."""
        if domain is None:
            raise ValueError(
                f"pass domain=NAME (or one name per sample); domains: {list(self.head.keys())}"
            )
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"expected images of shape (batch, 3, height, width), got {tuple(x.shape)}"
            )
        if isinstance(domain, str):
            self._check_domain(domain)
            return Route.for_domain(domain, x.shape[0])
        names = list(domain)
        if len(names) != x.shape[0]:
            raise ValueError(f"got {len(names)} domain names for a batch of {x.shape[0]} images")
        for name in dict.fromkeys(names):
            self._check_domain(name)
        return Route.for_samples(names, list(self.head.keys()))

    def forward_features(self, x: torch.Tensor, route: Route) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, route: Route) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, domain: str | Sequence[str] | None = None) -> torch.Tensor:
        """Logits of each image for its domain, ``(B, num_classes)``.

        For a mixed batch the logits are padded with ``-inf`` to the largest class count.
        """
        route = self.route(x, domain)
        if route.order is not None:
            x = x[route.order]
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with routing(route):  # for layers that read it from the context
            logits = self.forward_head(self.forward_features(x, route), route)
        return route.unsort(logits)

    @contextlib.contextmanager
    def routing(self, domain: str | Route) -> Iterator[Route]:
        """Run the per-domain layers of ``domain`` inside the block, for code that calls parts
        of the model (or a foreign block holding our layers) without passing a route::

            with model.routing("svhn"):
                features = model.stages[0](x)   # blocks that take no route
        """
        if isinstance(domain, str):
            self._check_domain(domain)
            domain = Route.for_domain(domain, 0)  # one domain: the batch size plays no part
        with routing(domain) as route:
            yield route

    def _apply_memory_format(self) -> None:
        if self.config.channels_last:
            self.to(memory_format=torch.channels_last)
