"""Any depthwise network made multi-domain: :func:`convert` and :class:`ConvertedNet`
(PAPER.md section 9; the shape of a PEFT tuner).

``convert(network, domains={"svhn": 10, ...})`` copies the network, finds its parts by structure
(``targets``) and puts per-domain containers in place of the parts each domain owns
(``config.owned_parts``): depthwise convolutions, normalisation layers, layer scales and the
classifier by default; pointwise layers stay shared. The result is a multi-domain model like
``resnet26_dw``: ``forward(x, domain=...)`` with mixed batches, ``add_domain`` /
``remove_domain``, roles, packs, parameter accounting, and :meth:`ConvertedNet.unload` that gives
back the plain network with one domain's weights.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from multidomain.convert.config import ConvertConfig, owned_parts
from multidomain.convert.layer import (
    DomainValue,
    domain_heads,
    make_value_per_domain,
    per_domain,
    restore_value,
)
from multidomain.convert.targets import Targets, find_targets
from multidomain.errors import ConfigError
from multidomain.layers import DomainHeads, PerDomain, Route, declare_role, routing
from multidomain.layers.per_domain import ROLE_ATTRIBUTE
from multidomain.models.base import MultiDomainNet
from multidomain.models.config import ModelConfig

# The role (models.roles) of each part's parameters.
ROLE_OF = {
    "depthwise": "depthwise",
    "pointwise": "pointwise",
    "conv": "conv",
    "norm": "norm",
    "se": "other",
    "classifier_hidden": "head",
}


class ConvertedNet(MultiDomainNet):
    """A foreign network with per-domain parts, run through the multi-domain interface.

    The per-domain heads sit where the network's classifier was, so ``forward_features`` runs
    the whole network (``forward_head`` has nothing left to do).
    """

    def __init__(self, config: ModelConfig, network: nn.Module, targets: Targets) -> None:
        super().__init__(config)
        self.network = network
        self.head_path = targets.classifier
        # A mixed batch passes once unless a layer scale cannot take one value per sample.
        self.one_pass = all(batchable for _, _, batchable in targets.layer_scales)
        self._apply_memory_format()

    @property
    def head(self) -> DomainHeads:  # a property: the heads are registered inside the network
        return self.network.get_submodule(self.head_path)

    def forward_features(self, x: torch.Tensor, route: Route) -> torch.Tensor:
        """Logits ``(B, num_classes)`` (padded with ``-inf`` for mixed batches)."""
        if self.one_pass or route.single is not None:
            return self.network(x)
        width = max(self.domains[name] for name, _, _ in route.segments)
        parts = []
        for (name, _, _), part in zip(route.segments, x.split(route.sizes), strict=True):
            with routing(Route.for_domain(name, part.shape[0])):
                logits = self.network(part)
            padding = (0, width - logits.shape[1])
            parts.append(nn.functional.pad(logits, padding, value=float("-inf")))
        return torch.cat(parts)

    def forward_head(self, x: torch.Tensor, route: Route) -> torch.Tensor:
        return x

    def add_domain(
        self, name: str, num_classes: int, init_from: str | None = None, dropout: float = 0.0
    ) -> None:
        if name not in self.domains:  # else the base class says it exists
            check_domain_names(self.network, [name])
        super().add_domain(name, num_classes, init_from, dropout)

    def unload(self, domain: str) -> nn.Module:
        """The plain network with ``domain``'s weights (a copy; this model is unchanged)."""
        self._check_domain(domain)
        network = copy.deepcopy(self.network)
        for path, container in list(_containers(network)):
            if isinstance(container, DomainValue):
                parent, _, attribute = path.rpartition(".")
                restore_value(network.get_submodule(parent), attribute, domain)
            else:
                own = container[domain]
                _replace(network, path, own.fc if isinstance(container, DomainHeads) else own)
        for module in network.modules():
            module.__dict__.pop(ROLE_ATTRIBUTE, None)
        return network


def convert(
    network: nn.Module | str,
    domains: dict[str, int],
    config: ConvertConfig | None = None,
) -> ConvertedNet:
    """A multi-domain copy of ``network`` (the network itself is left as it is).

    Args:
        network: a depthwise network (torchvision's or timm's MobileNet, EfficientNet, ConvNeXt,
            ...), or its source ``"torchvision:NAME"`` / ``"timm:NAME"`` (randomly initialised).
        domains: ordered ``{domain: num_classes}``; a domain with the network's class count
            starts from its classifier, the others from fresh heads.
        config: what each domain owns (:class:`ConvertConfig`).

    Raises:
        ConfigError: a network without depthwise convolutions, a layer type the converter
            refuses or does not know, or a domain name that collides with a module name.
    """
    from multidomain.convert.sources import build_network, infer_source

    config = config or ConvertConfig()
    if isinstance(network, str):
        source, network = network, build_network(network)
    else:
        source = config.source or infer_source(network)
    model_config = ModelConfig(
        source=source,
        domains=dict(domains),
        dropout=dict(config.dropout),
        method=config.method,
        method_options=dict(config.method_options),
        source_options=config.source_options(),
        channels_last=config.channels_last,
    )
    return convert_with(copy.deepcopy(network), model_config)


def convert_with(network: nn.Module, config: ModelConfig) -> ConvertedNet:
    """Make ``network`` (changed in place) multi-domain as ``config`` says."""
    targets = find_targets(network)
    check_domain_names(network, config.domains)
    owned = owned_parts(config.method, config.method_options, config.source_options)
    pointwise = targets.of("pointwise")
    last_pointwise = pointwise[-1] if pointwise else None
    names = list(config.domains)
    for target in targets.modules:
        module = network.get_submodule(target.path)
        if target.category == "classifier":
            _replace(network, target.path, domain_heads(module, config.domains, config.dropout))
            continue
        role = ROLE_OF[target.category]
        mine = target.category in owned or (
            target.path == last_pointwise and "last_pointwise" in owned
        )
        _replace(network, target.path, per_domain(module, names, role) if mine else module)
        if not mine:
            declare_role(module, role)
    for path, attribute, batchable in targets.layer_scales:
        make_value_per_domain(network.get_submodule(path), attribute, names, batchable)
    return ConvertedNet(config, network, targets)


def check_domain_names(network: nn.Module, domains: Sequence[str]) -> None:
    """Refuse domain names that read as module names in the state-dict keys, or that are
    attributes of a per-domain container (``train``, ``forward``, ...)."""
    modules = {}
    for path, module in network.named_modules():
        if isinstance(module, PerDomain):
            continue  # its children are the domains
        for name, _ in module.named_children():
            modules.setdefault(name, f"{path}.{name}" if path else name)
    for name in domains:
        if name in modules:
            raise ConfigError(
                f"domain name {name!r} collides with the module {modules[name]} of the "
                "network: its per-domain keys would read as module paths; rename the domain "
                f"(e.g. {name + '_domain'!r})"
            )
        if hasattr(PerDomain(), name):
            raise ConfigError(
                f"domain name {name!r} collides with the attribute {name!r} of the per-domain "
                f"modules (torch.nn.ModuleDict); rename the domain (e.g. {name + '_domain'!r})"
            )


def _containers(network: nn.Module):
    return ((p, m) for p, m in network.named_modules() if isinstance(m, PerDomain))


def _replace(network: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    network.get_submodule(parent)._modules[name] = module
