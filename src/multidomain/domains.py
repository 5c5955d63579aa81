"""Parse a domain specification: ``decathlon`` or ``name:classes,name:classes``."""

from __future__ import annotations

import re

from multidomain.decathlon import NUM_CLASSES as DECATHLON_CLASSES
from multidomain.errors import ConfigError

# ASCII letters, digits, '_' and '-' only: no '/', '\\', NUL, '.' or '..', so a name is always
# a module key and the stem of a file name (``domains/<name>.safetensors``).
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# File names are limited to 255 bytes; ``.<name>.safetensors.XXXXXXXX.tmp`` must fit too.
MAX_NAME_BYTES = 200


def validate_domain_name(name: str) -> str:
    """Return ``name`` if it can be a domain name (a module key and a file name).

    Raises:
        ConfigError: naming the bad name and what a name may hold.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"invalid domain name {name!r}: use letters, digits, '_' and '-', "
            "starting with a letter"
        )
    size = len(name.encode("utf-8"))
    if size > MAX_NAME_BYTES:
        raise ConfigError(
            f"invalid domain name {name[:20]}... ({size} bytes): a name is the stem of a file "
            f"name, so it may hold at most {MAX_NAME_BYTES} bytes; use a shorter name"
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
