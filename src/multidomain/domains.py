"""Parse a domain specification: ``decathlon`` or ``name:classes,name:classes``."""

from __future__ import annotations

import re

from multidomain.decathlon import NUM_CLASSES as DECATHLON_CLASSES
from multidomain.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def validate_domain_name(name: str) -> str:
    """Return ``name`` if it can be a domain name (a module key and a file name), else raise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"invalid domain name {name!r}: use letters, digits, '_' and '-', "
            "starting with a letter"
        )
    return name


def parse_domains(spec: str) -> dict[str, int]:
    """Turn ``"decathlon"`` or ``"svhn:10,dtd:47"`` into an ordered ``{domain: num_classes}``.

    Raises:
        ConfigError: (a ValueError) naming the malformed entry and the expected form.
    """
    spec = spec.strip()
    if spec == "decathlon":
        return dict(DECATHLON_CLASSES)
    domains: dict[str, int] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, classes = entry.partition(":")
        if not sep or not classes.strip().isdigit() or int(classes) < 1:
            raise ConfigError(
                f"bad domain entry {entry!r}: expected NAME:CLASSES such as 'svhn:10', "
                "or the word 'decathlon'"
            )
        name = validate_domain_name(name.strip())
        if name in domains:
            raise ConfigError(f"domain {name!r} is listed twice in {spec!r}")
        domains[name] = int(classes)
    if not domains:
        raise ConfigError(
            f"no domains in {spec!r}: give 'decathlon' or a list like 'svhn:10,dtd:47'"
        )
    return domains
