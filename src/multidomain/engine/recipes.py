"""Shipped YAML recipes (``src/multidomain/configs``, also reachable as ``configs/`` in a
checkout): ``mini/pretrain``, ``mini/adapt``, ``decathlon/adapt``, ..."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from multidomain.errors import InputNotFound


def shipped_configs() -> Path:
    return Path(str(resources.files("multidomain") / "configs"))


def list_recipes() -> list[str]:
    root = shipped_configs()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def resolve_config_path(spec: str) -> Path:
    """A path to a YAML file, or the name of a shipped recipe (``mini/pretrain``)."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = shipped_configs() / f"{spec.removesuffix('.yaml')}.yaml"
    if shipped.is_file():
        return shipped
    raise InputNotFound(
        f"config {spec!r} is neither a file nor a shipped recipe; give a YAML file or one of "
        f"{list_recipes()}"
    )
