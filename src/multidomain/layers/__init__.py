"""Building blocks: per-domain containers, separable convolutions, shortcuts, heads."""

from multidomain.layers.heads import ClassifierHead, DomainHeads
from multidomain.layers.per_domain import (
    DomainAware,
    PerDomain,
    Route,
    Routed,
    current_route,
    declare_role,
    declared_role,
    route_call,
    routing,
)
from multidomain.layers.sepconv import SepConv
from multidomain.layers.shortcut import PadShortcut

__all__ = [
    "ClassifierHead",
    "DomainAware",
    "DomainHeads",
    "PadShortcut",
    "PerDomain",
    "Route",
    "Routed",
    "SepConv",
    "current_route",
    "declare_role",
    "declared_role",
    "route_call",
    "routing",
]
