"""Building blocks: per-domain containers, separable convolutions, shortcuts, heads."""

from multidomain.layers.heads import ClassifierHead, DomainHeads
from multidomain.layers.per_domain import PerDomain, Route, Routed, route_call
from multidomain.layers.sepconv import SepConv
from multidomain.layers.shortcut import PadShortcut

__all__ = [
    "ClassifierHead",
    "DomainHeads",
    "PadShortcut",
    "PerDomain",
    "Route",
    "Routed",
    "SepConv",
    "route_call",
]
