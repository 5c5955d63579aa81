"""The configuration of a multi-domain model: what to build, saved next to its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from multidomain.domains import validate_domain_name
from multidomain.models.methods import get_method, list_methods

# The methods registered by the package itself (``models.methods``); read ``list_methods()``
# for every registered one.
SHARE_POLICIES = tuple(list_methods())


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model before loading its weights.

    Attributes:
        name: registered architecture (``multidomain.list_models()``).
        domains: ordered ``{domain: num_classes}``.
        width: channel multiplier (1.0 is the paper's network).
        share: the method (sharing policy) that builds the layers, a registered name
            (``models.methods.list_methods()``).
        own_last_pointwise: with ``share="pointwise"``, the last pointwise conv (512x512) is per
            domain, as the official code trains it.
        dropout: per-domain dropout before the head (domains not listed get 0).
        channels_last: run in channels-last memory format (faster for depthwise convs on CPU).
    """

    name: str
    domains: dict[str, int]
    width: float = 1.0
    share: str = "pointwise"
    own_last_pointwise: bool = True
    dropout: dict[str, float] = field(default_factory=dict)
    channels_last: bool = True

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("a model needs at least one domain, e.g. domains={'svhn': 10}")
        for name, classes in self.domains.items():
            validate_domain_name(name)
            if not isinstance(classes, int) or classes < 1:
                raise ValueError(
                    f"domain {name!r}: number of classes must be >= 1, got {classes!r}"
                )
        get_method(self.share)  # raises naming the registered methods
        if not self.width > 0:
            raise ValueError(f"width must be > 0, got {self.width}")
        unknown = set(self.dropout) - set(self.domains)
        if unknown:
            raise ValueError(f"dropout given for unknown domains {sorted(unknown)}")
        self.domains = dict(self.domains)
        self.dropout = {d: float(p) for d, p in self.dropout.items()}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def architecture(self) -> dict[str, Any]:
        """What must match for weights to be interchangeable (domains aside)."""
        return {
            "name": self.name,
            "width": self.width,
            "share": self.share,
            "own_last_pointwise": self.own_last_pointwise,
        }
