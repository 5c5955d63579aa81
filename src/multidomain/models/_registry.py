"""One registry of model builders: ``create_model(name, domains=...)`` and ``list_models()``.

A model's ``source`` is a registered name (``resnet26_dw``), or ``PREFIX:NAME`` for a network
that a registered *source* provides: :func:`register_source` adds one (the converter of foreign
networks registers ``torchvision`` and ``timm``), so :func:`build_model` rebuilds any saved model
from its config alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from multidomain.errors import ConfigError
from multidomain.models.config import ModelConfig
from multidomain.models.methods import resolve_options
from multidomain.registry import Registry

Builder = Callable[[ModelConfig], nn.Module]


@dataclass(frozen=True)
class Source:
    """A registered ``PREFIX:NAME`` source.

    Attributes:
        builder: ``builder(config) -> model`` (it reads the NAME off ``config.source``).
        default_method: the method its models get when none is given.
        options: the options it takes (``model.source_options``) and their defaults.
        method_defaults: defaults of method options for its models (over the method's own),
            e.g. ``{"own_last_pointwise": False}``; an option the method lacks is ignored.
        check_name: raises a :class:`ConfigError` naming the choices when it cannot build
            NAME (so configs are checked on load); None: any NAME passes until built.
    """

    builder: Builder
    default_method: str
    options: Mapping[str, Any] = field(default_factory=dict)
    method_defaults: Mapping[str, Any] = field(default_factory=dict)
    check_name: Callable[[str], None] | None = None


_MODELS: Registry[Source] = Registry("model")  # name -> its builder and default method
_SOURCES: Registry[Source] = Registry("model source")  # prefix -> how its networks are built


def register_model(default_method: str) -> Callable:
    """Register ``fn(config) -> model`` under the function's name."""

    def wrap(fn: Builder) -> Builder:
        _MODELS.add(fn.__name__, Source(fn, default_method))
        return fn

    return wrap


def register_source(
    prefix: str,
    builder: Builder,
    default_method: str,
    options: Mapping[str, Any] | None = None,
    method_defaults: Mapping[str, Any] | None = None,
    check_name: Callable[[str], None] | None = None,
) -> None:
    """Let ``PREFIX:NAME`` sources be built by ``builder(config)`` (see :class:`Source`)."""
    _SOURCES.add(
        prefix, Source(builder, default_method, options or {}, method_defaults or {}, check_name)
    )


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_MODELS.names())


def list_sources() -> list[str]:
    """Registered source prefixes (``PREFIX:NAME``)."""
    return sorted(_SOURCES.names())


def check_source(source: str) -> None:
    """Raise a :class:`ConfigError` naming the choices unless ``source`` can be built."""
    check_name = _source(source).check_name
    if check_name is not None:
        check_name(source.partition(":")[2])


def default_method(source: str) -> str:
    """The method a model of ``source`` gets when none is given."""
    return _source(source).default_method


def method_defaults(source: str) -> Mapping[str, Any]:
    """Defaults of method options that ``source`` sets over the methods' own."""
    return _source(source).method_defaults


def resolve_source_options(source: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` over the defaults of the options ``source`` takes (``model.source_options``).

    Raises:
        ConfigError: an option the source does not take, or a value of another type than its
            default's.
    """
    return resolve_options(f"model source {source!r}", _source(source).options, given)


def _source(source: str) -> Source:
    prefix, colon, _ = source.partition(":")
    if colon:
        if prefix not in _SOURCES:
            raise ConfigError(
                f"unknown model source {source!r}: no source {prefix!r} is registered "
                f"(registered: {list_sources() or 'none'}); or give a model: {list_models()}"
            )
        return _SOURCES.get(prefix)
    return _MODELS.get(source)


def create_model(
    name: str,
    domains: dict[str, int],
    method: str | None = None,
    *,
    share: str | None = None,
    **options: Any,
) -> nn.Module:
    """Build a registered multi-domain model.

    Args:
        name: the source, e.g. ``"resnet26_dw"`` (see :func:`list_models`).
        domains: ordered ``{domain: num_classes}``.
        method: how domains share it (``models.methods.list_methods()``); default: the
            model's own (``pointwise`` for ``resnet26_dw``). ``share`` is its earlier name.
        **options: other :class:`ModelConfig` fields (``width``, ``method_options``,
            ``dropout``, ...).
    """
    if share is not None and method is not None and share != method:
        raise ConfigError(f"give method only (share={share!r} is its earlier name)")
    config = ModelConfig(source=name, domains=dict(domains), method=method or share, **options)
    return build_model(config)


def build_model(config: ModelConfig) -> nn.Module:
    """Build the model a (saved) configuration describes."""
    return _source(config.source).builder(config)
