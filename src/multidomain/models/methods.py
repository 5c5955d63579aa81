"""Methods: what a domain owns and which layers it gets, registered by name like models.

A method supplies the factories the backbones build their convolutions with (as timm blocks take
``norm_layer`` and torchvision's ResNet takes ``norm_layer``): a backbone asks for a convolution
unit by *kind* (``"separable"``: depthwise 3x3 then pointwise 1x1; ``"standard"``: one 3x3) and
the method decides what is shared, what is per domain, and what extra layers go in. What a target
domain trains is the recipe's ``optim.train`` (roles among what the domain owns), so a method
that trains less than everything it gives a domain ships a recipe saying so. The backbones never
see a method's name: adding a method is one layer file (its layers) plus one
:func:`register_method` entry.

Registered here, the four sharing policies of PAPER.md section 3 (every method keeps BN and
heads per domain):

- ``pointwise``: pointwise shared, depthwise per domain (the paper), the last pointwise per
  domain too unless its option ``own_last_pointwise`` is off (as the official code trains it);
- ``depthwise``: depthwise shared, pointwise per domain (RQ2);
- ``none``: every convolution per domain (independent networks, fine-tuning);
- ``all``: every convolution shared (BN adaptation; with frozen BN, the feature extractor);
- ``soft``: soft sharing of depthwise filters (PAPER.md section 3, ``layers.soft_sharing``):
  every domain's depthwise bank, frozen, mixed per sample by the target's gate;
- ``series``, ``parallel``: residual adapters of Rebuffi et al. on the standard ResNet-26
  (PAPER.md section 7, ``layers.adapters``): shared 3x3 convs, per-domain 1x1 adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from multidomain.errors import ConfigError
from multidomain.layers.adapters import ADAPTER_ROLE, ParallelAdapterConv, SeriesAdapterConv
from multidomain.layers.per_domain import (
    conv3x3,
    depthwise_conv,
    per_domain_or_shared,
    pointwise_conv,
)
from multidomain.layers.sepconv import SepConv
from multidomain.layers.soft_sharing import GATE_ROLE, SoftGates, SoftSepConv
from multidomain.registry import Registry


@dataclass(frozen=True)
class ConvRequest:
    """What a backbone asks a method for: one convolution unit.

    Attributes:
        kind: ``"separable"`` or ``"standard"``.
        in_channels, out_channels, stride: its shape.
        is_last: the network's last convolution (the official code's own last pointwise).
        domains: the model's domains, in order.
        options: the method's options, resolved (:meth:`Method.resolve_options`).
    """

    kind: str
    in_channels: int
    out_channels: int
    stride: int
    is_last: bool
    domains: Sequence[str]
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A named way of sharing a network between domains.

    Attributes:
        name: the registry name (``model.method`` / ``--method`` in configs and the CLI).
        make_conv: builds the convolution unit a :class:`ConvRequest` asks for.
        kinds: the convolution kinds it can build.
        options: the options it takes (``model.method_options``) and their defaults; a
            model's config records them all, so a saved model rebuilds the same layers.
        trains: the roles a target domain trains by default when a recipe adapts per-domain
            parts (``optim.train`` unset); None: every role the domain owns.
        mixes_domains: a domain's output reads other domains' weights (soft sharing's gates
            mix every domain's bank), so one domain alone cannot be cut out of the model (an
            export keeps every domain; the selection is folded away all the same).
    """

    name: str
    make_conv: Callable[[ConvRequest], nn.Module]
    kinds: tuple[str, ...] = ("separable", "standard")
    options: Mapping[str, Any] = field(default_factory=dict)
    trains: tuple[str, ...] | None = None
    mixes_domains: bool = False

    def resolve_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every option of this method: ``given`` over the defaults.

        Raises:
            ConfigError: an option this method does not take, or a value of another type than
                its default's.
        """
        return resolve_options(f"method {self.name!r}", self.options, given)

    def conv(self, request: ConvRequest) -> nn.Module:
        if request.kind not in self.kinds:
            raise ConfigError(
                f"method {self.name!r} needs a network with {' or '.join(self.kinds)} "
                f"convolutions, but this one has {request.kind} ones; methods for it: "
                f"{methods_for(request.kind)}"
            )
        return self.make_conv(request)


_METHODS: Registry[Method] = Registry("method")


def register_method(method: Method) -> Method:
    """Add ``method`` to the registry; a name is registered once."""
    return _METHODS.add(method.name, method)


def get_method(name: str) -> Method:
    return _METHODS.get(name)


def list_methods() -> list[str]:
    return _METHODS.names()


def resolve_options(
    owner: str, defaults: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    """``given`` over ``defaults``: the options of ``owner`` (a method, a model source).

    Raises:
        ConfigError: an option ``owner`` does not take, or a value of another type than its
            default's (an int passes where the default is a float).
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        takes = f"it takes {sorted(defaults)}" if defaults else "it takes none"
        raise ConfigError(f"{owner} has no option {unknown}: {takes}")
    for key, value in given.items():
        default = defaults[key]
        if type(value) is not type(default) and not _is_number_for(default, value):
            raise ConfigError(
                f"{owner}: option {key} must be a {type(default).__name__} "
                f"like its default {default!r}, got {value!r}"
            )
    return {**defaults, **given}


def _is_number_for(default: Any, value: Any) -> bool:
    """An int given where the default is a float (YAML reads ``1`` as an int)."""
    return type(default) is float and type(value) is int


def methods_for(kind: str) -> list[str]:
    return [name for name in _METHODS if kind in _METHODS.get(name).kinds]


def sharing(owned: frozenset[str]) -> Callable:
    """A ``make_conv`` that makes each part per domain when its role is in ``owned``, else
    shared (the option ``own_last_pointwise``, where a method takes it: the network's last
    pointwise conv is per domain too)."""

    def make_conv(request: ConvRequest) -> nn.Module:
        def part(role: str, build: Callable[[], nn.Module], own_anyway: bool = False):
            return per_domain_or_shared(build, request.domains, not (role in owned or own_anyway))

        cin, cout, stride = request.in_channels, request.out_channels, request.stride
        if request.kind == "standard":
            return part("conv", lambda: conv3x3(cin, cout, stride))
        own_last = request.is_last and request.options.get("own_last_pointwise", False)
        return SepConv(
            part("depthwise", lambda: depthwise_conv(cin, stride)),
            part("pointwise", lambda: pointwise_conv(cin, cout), own_anyway=own_last),
        )

    return make_conv


register_method(
    Method(
        "pointwise",
        sharing(frozenset({"depthwise"})),
        kinds=("separable",),
        options={"own_last_pointwise": True},
    )
)
register_method(Method("depthwise", sharing(frozenset({"pointwise"})), kinds=("separable",)))
register_method(Method("none", sharing(frozenset({"depthwise", "pointwise", "conv"}))))
register_method(Method("all", sharing(frozenset())))


def soft_conv(request: ConvRequest) -> nn.Module:
    """Soft sharing (``layers.soft_sharing``): a bank per domain, a gate per target domain
    (the model's first domain, the pretraining source, has none), the pointwise shared except
    the last one when ``own_last_pointwise``."""
    cin, cout = request.in_channels, request.out_channels
    banks = per_domain_or_shared(
        lambda: depthwise_conv(cin, request.stride), request.domains, shared=False
    )
    own_last = request.is_last and request.options["own_last_pointwise"]
    conv_pw = per_domain_or_shared(lambda: pointwise_conv(cin, cout), request.domains, not own_last)
    source = request.domains[0]
    gates = SoftGates(cin, request.domains, source, request.options["own_bank_bias"])
    return SoftSepConv(banks, conv_pw, gates)


register_method(
    Method(
        "soft",
        soft_conv,
        kinds=("separable",),
        # own_bank_bias: our addition (0 = the official init), added to the own bank's logit
        options={"own_last_pointwise": True, "own_bank_bias": 0.0},
        trains=(GATE_ROLE, "norm", "pointwise", "head"),  # the banks stay frozen (official)
        mixes_domains=True,
    )
)


def adapter_method(name: str, unit: type[nn.Module]) -> Method:
    """Residual adapters (``layers.adapters``) on every 3x3 conv of a standard network; a
    target trains its adapters, norms and head (the official code)."""

    def make_conv(request: ConvRequest) -> nn.Module:
        cin, cout = request.in_channels, request.out_channels
        return unit(cin, cout, request.stride, request.domains)

    return Method(name, make_conv, kinds=("standard",), trains=(ADAPTER_ROLE, "norm", "head"))


register_method(adapter_method("series", SeriesAdapterConv))
register_method(adapter_method("parallel", ParallelAdapterConv))
