"""The types a run configuration's fields may have, checked and described in words: the
annotations of ``engine.config``'s sections (``int | None``, ``list[str]``, ``dict[str, int]``,
...) turned into ``isinstance`` checks and into the words of error messages."""

from __future__ import annotations

import types
import typing
from typing import Any


def has_type(value: Any, hint: Any) -> bool:
    """``isinstance`` for the annotations the config uses (an int is not a bool, and is a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(has_type(value, arm) for arm in args)
    if origin is list:
        return isinstance(value, list) and all(has_type(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            has_type(k, args[0]) and has_type(v, args[1]) for k, v in value.items()
        )
    if hint is type(None):
        return value is None
    if hint in (int, float) and isinstance(value, bool):
        return False
    if hint is float:
        return isinstance(value, (int, float))
    if hint in (bool, int, str):
        return isinstance(value, hint)
    raise TypeError(f"config annotation {hint!r} has no type check: add one to has_type")


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def describe(hint: Any) -> str:
    """The annotation in words: ``int | None`` -> "an integer or null"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        words = [describe(arm) for arm in args if arm is not type(None)]
        return " or ".join(words + (["null"] if type(None) in args else []))
    if origin is list:
        return f"a list of {_PLURALS[args[0]]}"
    if origin is dict:
        values = typing.get_args(args[1]) or (args[1],)
        return f"a mapping of {_PLURALS[args[0]]} to {' or '.join(_PLURALS[v] for v in values)}"
    return _TYPE_NAMES[hint]
