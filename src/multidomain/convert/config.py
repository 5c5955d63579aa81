"""What the converter makes per domain: :class:`ConvertConfig` (PAPER.md section 9).

Every domain always owns its normalisation layers (BatchNorm with its eps and momentum, timm's
``BatchNormAct2d``, LayerNorm), ConvNeXt's per-block layer scale and its classifier head; the
*method* says which convolutions it owns besides (``pointwise``: its depthwise convolutions,
the paper's method). Squeeze-excitation and the classifier's hidden layers are shared unless
asked for: in ``mobilenet_v3_small`` they hold 462k and 1.6M parameters against 58.6k in the
depthwise convolutions, so they decide what a domain costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multidomain.errors import ConfigError

# Parts (targets.CATEGORIES) that a domain owns under each method the converter supports.
METHOD_OWNS: dict[str, frozenset[str]] = {
    "pointwise": frozenset({"depthwise"}),  # the paper: depthwise per domain
    "depthwise": frozenset({"pointwise"}),  # RQ2: pointwise per domain
    "none": frozenset({"depthwise", "pointwise", "conv", "se", "classifier_hidden"}),
    "all": frozenset(),  # every convolution shared (BN adaptation)
}
ALWAYS_OWNED = frozenset({"norm", "layer_scale", "classifier"})
# The options of the torchvision:/timm: sources (``model.source_options``) and their defaults.
SOURCE_OPTIONS: dict[str, bool] = {"own_se": False, "own_classifier_hidden": False}
# Method options the converted networks default to otherwise than ResNet-26 does: the issue's
# "pointwise convolutions stay shared" (ConvNeXt-Tiny's last pointwise alone is 2.4M).
METHOD_DEFAULTS: dict[str, Any] = {"own_last_pointwise": False}


@dataclass(kw_only=True)
class ConvertConfig:
    """How :func:`multidomain.convert.convert` makes a network multi-domain.

    Attributes:
        method: which convolutions a domain owns: ``pointwise`` (depthwise per domain, the
            paper), ``depthwise``, ``none`` (everything per domain) or ``all``.
        method_options: the method's options; ``own_last_pointwise`` (default False here)
            makes the network's last pointwise layer per domain too.
        own_se: squeeze-excitation modules per domain (default shared).
        own_classifier_hidden: the classifier's hidden layers per domain (default shared).
        source: ``torchvision:NAME`` or ``timm:NAME``, the builder of the network, recorded so
            ``load_model`` rebuilds it without your code; None: read off the network where it
            can be (timm's ``pretrained_cfg``, torchvision's builders).
        dropout: per-domain dropout before each head.
        channels_last: run in channels-last memory format.
    """

    method: str = "pointwise"
    method_options: dict[str, Any] = field(default_factory=dict)
    own_se: bool = False
    own_classifier_hidden: bool = False
    source: str | None = None
    dropout: dict[str, float] = field(default_factory=dict)
    channels_last: bool = True

    def __post_init__(self) -> None:
        check_method(self.method)
        for name in ("own_se", "own_classifier_hidden", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"ConvertConfig.{name} must be True or False")

    def source_options(self) -> dict[str, bool]:
        return {"own_se": self.own_se, "own_classifier_hidden": self.own_classifier_hidden}


def check_method(method: str) -> None:
    if method not in METHOD_OWNS:
        raise ConfigError(
            f"method {method!r} cannot convert a network; the converter supports "
            f"{sorted(METHOD_OWNS)}"
        )


def owned_parts(
    method: str, method_options: dict[str, Any], source_options: dict[str, Any]
) -> frozenset[str]:
    """The parts (``targets.CATEGORIES``) each domain owns."""
    check_method(method)
    owned = set(ALWAYS_OWNED | METHOD_OWNS[method])
    if source_options.get("own_se"):
        owned.add("se")
    if source_options.get("own_classifier_hidden"):
        owned.add("classifier_hidden")
    if method_options.get("own_last_pointwise"):
        owned.add("last_pointwise")
    return frozenset(owned)
