"""The offline mini-decathlon: real images shipped inside packages (OFFLINE_DATA.md), written as
a devkit tree so that the rest of the project reads one format only.

``DOMAIN_SPECS`` lists the domains (one module per source); ``prepare_offline`` builds the tree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from multidomain.data.offline import (
    animals,
    characters,
    digits,
    faces,
    fashion,
    letters,
    lowres_digits,
    textures,
)
from multidomain.errors import ConfigError


@dataclass(frozen=True)
class DomainSpec:
    """One mini-decathlon domain.

    Attributes:
        name: the domain's folder name.
        load: ``load(rng, per_class, size) -> SourceImages | None`` (None: source not installed).
        per_class: images per class in the default build.
        crop: crop policy of the recipe (``random_crop``, ``center_crop``, ``none``).
    """

    name: str
    load: Callable
    per_class: int
    crop: str


# Digit- and glyph-like domains are centred by construction: center crop, as svhn/omniglot.
DOMAIN_SPECS: tuple[DomainSpec, ...] = (
    DomainSpec("animals", animals.load, 300, "random_crop"),
    DomainSpec("characters", characters.load, 12, "center_crop"),
    DomainSpec("digits", digits.load, 200, "center_crop"),
    DomainSpec("faces", faces.load, 100, "random_crop"),
    DomainSpec("fashion", fashion.load, 200, "random_crop"),
    DomainSpec("letters", letters.load, 40, "center_crop"),
    DomainSpec("lowres-digits", lowres_digits.load, 150, "center_crop"),
    DomainSpec("textures", textures.load, 200, "random_crop"),
)
# The largest domain: the pretraining "source" domain (ImageNet's role in the paper).
SOURCE_DOMAIN = "animals"


def spec_by_name(name: str) -> DomainSpec:
    """The spec of ``name``; raises naming the valid domains."""
    for spec in DOMAIN_SPECS:
        if spec.name == name:
            return spec
    valid = ", ".join(spec.name for spec in DOMAIN_SPECS)
    raise ConfigError(f"unknown mini-decathlon domain {name!r}: choose from {valid}")
