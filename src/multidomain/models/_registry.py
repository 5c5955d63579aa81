"""One registry of model builders: ``create_model(name, domains=...)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from multidomain.errors import ConfigError
from multidomain.models.config import ModelConfig

_BUILDERS: dict[str, Callable[[ModelConfig], nn.Module]] = {}
_DEFAULT_SHARE: dict[str, str] = {}


def register_model(default_share: str) -> Callable:
    """Register ``fn(config) -> model`` under the function's name."""

    def wrap(fn: Callable[[ModelConfig], nn.Module]) -> Callable[[ModelConfig], nn.Module]:
        if fn.__name__ in _BUILDERS:
            raise ConfigError(f"a model named {fn.__name__!r} is already registered")
        _BUILDERS[fn.__name__] = fn
        _DEFAULT_SHARE[fn.__name__] = default_share
        return fn

    return wrap


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_BUILDERS)


def create_model(name: str, domains: dict[str, int], **options: Any) -> nn.Module:
    """Build a registered multi-domain model.

    Args:
        name: e.g. ``"resnet26_dw"`` (see :func:`list_models`).
        domains: ordered ``{domain: num_classes}``.
        **options: other :class:`ModelConfig` fields (``width``, ``share``, ``dropout``, ...).
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}")
    options.setdefault("share", _DEFAULT_SHARE[name])
    return build_model(ModelConfig(name=name, domains=dict(domains), **options))


def build_model(config: ModelConfig) -> nn.Module:
    """Build the model a (saved) configuration describes."""
    if config.name not in _BUILDERS:
        raise ValueError(f"unknown model {config.name!r}; available: {list_models()}")
    return _BUILDERS[config.name](config)
