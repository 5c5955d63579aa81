"""A name -> item registry, as timm keeps one for models: used for models and model sources
(``models._registry``), methods (``models.methods``) and the comparison table's rows
(``engine.rows``). A name is registered once; an unknown name is a :class:`ConfigError` that
lists the registered ones."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from multidomain.errors import ConfigError

Item = TypeVar("Item")


class Registry(Generic[Item]):
    """Items of one kind (``kind``: "method", "row", ...) by name, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Item] = {}

    def add(self, name: str, item: Item) -> Item:
        if name in self._items:
            raise ConfigError(f"a {self.kind} named {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> Item:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {self.names()}")
        return self._items[name]

    def copy(self) -> Registry[Item]:
        """A registry with the same items (tests register into a copy)."""
        other: Registry[Item] = Registry(self.kind)
        other._items = dict(self._items)
        return other

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
