"""One registry of model builders: ``create_model(name, domains=...)`` and ``list_models()``.

A model's ``source`` is a registered name (``resnet26_dw``), or ``PREFIX:NAME`` for a network
that a registered *source* provides: :func:`register_source` adds one (the converter of foreign
networks registers ``torchvision`` and ``timm``), so :func:`build_model` rebuilds any saved model
from its config alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from multidomain.errors import ConfigError
from multidomain.models.config import ModelConfig

Builder = Callable[[ModelConfig], nn.Module]
_BUILDERS: dict[str, Builder] = {}
_DEFAULT_METHOD: dict[str, str] = {}
_SOURCES: dict[str, tuple[Builder, str]] = {}  # prefix -> (builder, default method)


def register_model(default_method: str) -> Callable:
    """Register ``fn(config) -> model`` under the function's name."""

    def wrap(fn: Builder) -> Builder:
        if fn.__name__ in _BUILDERS:
            raise ConfigError(f"a model named {fn.__name__!r} is already registered")
        _BUILDERS[fn.__name__] = fn
        _DEFAULT_METHOD[fn.__name__] = default_method
        return fn

    return wrap


def register_source(prefix: str, builder: Builder, default_method: str) -> None:
    """Let ``PREFIX:NAME`` sources be built by ``builder(config)`` (it reads the NAME)."""
    if prefix in _SOURCES:
        raise ConfigError(f"a model source {prefix!r} is already registered")
    _SOURCES[prefix] = (builder, default_method)


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_BUILDERS)


def list_sources() -> list[str]:
    """Registered source prefixes (``PREFIX:NAME``)."""
    return sorted(_SOURCES)


def check_source(source: str) -> None:
    """Raise a :class:`ConfigError` naming the choices unless ``source`` can be built."""
    _builder_and_default(source)


def default_method(source: str) -> str:
    """The method a model of ``source`` gets when none is given."""
    return _builder_and_default(source)[1]


def _builder_and_default(source: str) -> tuple[Builder, str]:
    prefix, colon, _ = source.partition(":")
    if colon:
        if prefix not in _SOURCES:
            raise ConfigError(
                f"unknown model source {source!r}: no source {prefix!r} is registered "
                f"(registered: {list_sources() or 'none'}); or give a model: {list_models()}"
            )
        return _SOURCES[prefix]
    if source not in _BUILDERS:
        raise ConfigError(f"unknown model {source!r}; available: {list_models()}")
    return _BUILDERS[source], _DEFAULT_METHOD[source]


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
    return _builder_and_default(config.source)[0](config)
