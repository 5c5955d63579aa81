"""The configuration of a multi-domain model: what to build, saved whole next to its weights.

:class:`ModelSpec` says which network and which method; :class:`ModelConfig` adds the domains
(what a saved model needs to be rebuilt) and the run configuration's ``model`` section adds where
the weights start from (``engine.config.ModelSection``). Both extend the spec, so a field is
declared once.

Files written before the ``source``/``method`` names (``name``, ``share``,
``own_last_pointwise``) still load: :func:`upgrade_legacy_keys` maps them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from multidomain.domains import validate_domain_name
from multidomain.errors import ConfigError
from multidomain.models.methods import get_method, list_methods

# The methods registered by the package itself (``models.methods``); read ``list_methods()``
# for every registered one.
SHARE_POLICIES = tuple(list_methods())
# Keys of files written before this version, and their names now.
LEGACY_KEYS = {"name": "source", "share": "method"}
OptionValue = bool | int | float | str


@dataclass(kw_only=True)
class ModelSpec:
    """Which network, under which method (everything but the domains).

    Attributes:
        source: the network: a registered model (``multidomain.list_models()``), or
            ``PREFIX:NAME`` for a network a registered source provides (see
            ``models._registry.register_source``).
        width: channel multiplier (1.0 is the paper's network).
        method: how domains share the network, a registered method
            (``models.methods.list_methods()``); None: the source's default.
        method_options: the method's options (``Method.options``), e.g.
            ``{"own_last_pointwise": False}`` for ``pointwise``.
        channels_last: run in channels-last memory format (faster for depthwise convs on CPU).
        source_options: the options of a ``PREFIX:NAME`` source (the converter's: which parts
            a domain owns besides the method's, ``multidomain.convert.ConvertConfig``).
    """

    source: str = "resnet26_dw"
    width: float = 1.0
    method: str | None = None
    method_options: dict[str, OptionValue] = field(default_factory=dict)
    channels_last: bool = True
    source_options: dict[str, OptionValue] = field(default_factory=dict)

    def resolved_method_options(self) -> dict[str, OptionValue]:
        """The method's options with its defaults filled in (the method must be set): the
        source's defaults for them (``register_source(method_defaults=...)``) over the
        method's own.

        Raises:
            ConfigError: an unknown method, or an option it does not take.
        """
        from multidomain.models._registry import method_defaults  # the registry imports us

        method = get_method(self.method)
        defaults = {k: v for k, v in method_defaults(self.source).items() if k in method.options}
        return method.resolve_options({**defaults, **self.method_options})

    def architecture(self) -> dict[str, Any]:
        """What must match for weights to be interchangeable (domains aside); the source's
        options appear only where the source takes some."""
        from multidomain.models._registry import resolve_source_options

        architecture = {
            "source": self.source,
            "width": self.width,
            "method": self.method,
            "method_options": dict(sorted(self.resolved_method_options().items())),
        }
        source_options = resolve_source_options(self.source, self.source_options)
        if source_options:
            architecture["source_options"] = dict(sorted(source_options.items()))
        return architecture


@dataclass(kw_only=True)
class ModelConfig(ModelSpec):
    """Everything needed to rebuild a model before loading its weights.

    Attributes (besides :class:`ModelSpec`'s, whose ``method`` is resolved here):
        domains: ordered ``{domain: num_classes}``.
        dropout: per-domain dropout before the head (domains not listed get 0).
    """

    domains: dict[str, int]
    dropout: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("a model needs at least one domain, e.g. domains={'svhn': 10}")
        for name, classes in self.domains.items():
            validate_domain_name(name)
            if not isinstance(classes, int) or classes < 1:
                raise ValueError(
                    f"domain {name!r}: number of classes must be >= 1, got {classes!r}"
                )
        from multidomain.models._registry import default_method, resolve_source_options

        default = default_method(self.source)  # raises naming the registered models
        self.method = default if self.method is None else self.method
        self.method_options = self.resolved_method_options()
        self.source_options = resolve_source_options(self.source, self.source_options)
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
        """Read a saved config (of this version or an earlier one)."""
        data = upgrade_legacy_keys(data, "model config")
        known = {name for name in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def upgrade_legacy_keys(values: dict[str, Any], origin: str) -> dict[str, Any]:
    """``values`` with the keys of earlier versions renamed: ``name`` -> ``source``,
    ``share`` -> ``method``, and ``own_last_pointwise`` moved into ``method_options`` (kept
    only where the method takes it: earlier versions saved it for every method).

    Raises:
        ConfigError: an old key given together with its new name.
    """
    values = dict(values)
    for old, new in LEGACY_KEYS.items():
        if old in values:
            if new in values:
                raise ConfigError(f"{origin}: give {new} only ({old} is its earlier name)")
            values[new] = values.pop(old)
    if "own_last_pointwise" in values:
        own_last = values.pop("own_last_pointwise")
        options = dict(values.get("method_options") or {})
        if values.get("method") in (None, "pointwise") and (
            own_last is not True or "own_last_pointwise" in options
        ):
            options["own_last_pointwise"] = own_last
        values["method_options"] = options
    return values


def normalized_architecture(saved: Any) -> Any:
    """A pack's recorded architecture in this version's terms (earlier packs recorded
    ``name``/``share``/``own_last_pointwise``); anything else is returned as it is."""
    if not isinstance(saved, dict) or "source" in saved:
        return saved
    try:
        return ModelSpec(**upgrade_legacy_keys(saved, "pack")).architecture()
    except (ConfigError, TypeError):
        return saved
