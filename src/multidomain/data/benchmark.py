"""Which domains a data root holds, and their per-domain facts: the ``benchmark.json`` schema.

The real Visual Decathlon needs no file: its facts are the constants of ``multidomain.decathlon``.
A tree built by ``multidomain data prepare-offline`` carries a ``benchmark.json`` at its root::

    {
      "name": "mini-decathlon", "version": 1 | 2, "format_version": 2,
      "image_size": 72, "crop_size": 64, "source_domain": "animals",
      "domains": {
        "<domain>": {
          "num_classes": 10,
          "mean": [r, g, b], "std": [r, g, b],        # of the train images, in [0, 1]
          "crop": "random_crop" | "center_crop" | "none",
          "baseline_accuracy": null | float,          # top-1 % of the score's baseline
          "images": {"train": n, "val": n, "test": n},
          "source": "where the images come from",
          "licence": "the images' licence"           # version 2 on (version 1: in source)
        }, ...
      }
    }

``baseline_accuracy`` stays null until the engine's baseline recipe has measured it; the scorer
refuses to invent it (PAPER.md section 6). Domain ids follow the sorted order of ``domains``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multidomain.data.devkit import read_json, write_json_atomic
from multidomain.decathlon import BASELINE_ACCURACY, MEAN_STD, NUM_CLASSES
from multidomain.errors import ConfigError, DataError

BENCHMARK_FILE = "benchmark.json"
# The build format of the mini-decathlon, part of its build parameters: a tree of another
# format is rebuilt, never mixed with this one. 2: image ids with the devkit's 200,000 offset.
FORMAT_VERSION = 2
CROP_POLICIES = ("random_crop", "center_crop", "none")
# PAPER.md section 4: which Decathlon domains skip the random crop.
DECATHLON_CROP: dict[str, str] = {
    "gtsrb": "center_crop",
    "omniglot": "center_crop",
    "svhn": "center_crop",
    "daimlerpedcls": "none",
}

Triple = tuple[float, float, float]


@dataclass(frozen=True)
class DomainInfo:
    """Facts about one domain that the loader and the scorer need."""

    num_classes: int
    mean: Triple
    std: Triple
    crop: str = "random_crop"
    baseline_accuracy: float | None = None

    def __post_init__(self) -> None:
        if self.crop not in CROP_POLICIES:
            raise DataError(f"unknown crop policy {self.crop!r}: choose one of {CROP_POLICIES}")


@dataclass(frozen=True)
class Benchmark:
    """A set of domains with their facts; ``domains`` is keyed by name."""

    name: str
    domains: dict[str, DomainInfo]
    image_size: int = 72
    crop_size: int = 64
    source_domain: str | None = None
    path: Path | None = field(default=None, compare=False)

    def domain(self, name: str) -> DomainInfo:
        """The facts of ``name``; raises naming the valid domains."""
        if name not in self.domains:
            raise ConfigError(
                f"unknown domain {name!r} for benchmark {self.name!r}: "
                f"choose one of {', '.join(sorted(self.domains))}"
            )
        return self.domains[name]

    def domain_index(self, name: str) -> int:
        """Position of ``name`` in the sorted domain list: the id prefix of the devkit."""
        self.domain(name)
        return sorted(self.domains).index(name)

    def baseline_accuracies(self) -> dict[str, float]:
        """Baseline top-1 accuracy (%) per domain.

        Raises:
            ValueError: when any baseline is missing (not measured yet).
        """
        missing = [name for name, info in self.domains.items() if info.baseline_accuracy is None]
        if missing:
            where = self.path or self.name
            raise DataError(
                f"the baselines of benchmark {where} have not been measured yet (missing for "
                f"{', '.join(sorted(missing))}): measure them with the engine's baseline recipe, "
                "which writes them into benchmark.json"
            )
        return {name: float(info.baseline_accuracy) for name, info in self.domains.items()}


def decathlon_benchmark() -> Benchmark:
    """The Visual Decathlon's facts (PAPER.md sections 4-6)."""
    domains = {
        name: DomainInfo(
            num_classes=NUM_CLASSES[name],
            mean=MEAN_STD[name][0],
            std=MEAN_STD[name][1],
            crop=DECATHLON_CROP.get(name, "random_crop"),
            baseline_accuracy=BASELINE_ACCURACY[name],
        )
        for name in sorted(NUM_CLASSES)
    }
    return Benchmark(name="decathlon", domains=domains, source_domain="imagenet12")


def _domain_from_json(name: str, entry: dict[str, Any], path: Path) -> DomainInfo:
    try:
        return DomainInfo(
            num_classes=int(entry["num_classes"]),
            mean=tuple(float(v) for v in entry["mean"]),
            std=tuple(float(v) for v in entry["std"]),
            crop=entry.get("crop", "random_crop"),
            baseline_accuracy=entry.get("baseline_accuracy"),
        )
    except (KeyError, TypeError) as err:
        raise DataError(
            f"{path}: domain {name!r} lacks a valid {err} entry: fix the file or re-create it"
        ) from err


def read_benchmark(path: str | Path) -> Benchmark:
    """Parse a ``benchmark.json`` file (see the module docstring for the schema)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} not found")
    try:
        content = read_json(path)
    except ValueError as err:
        raise DataError(str(err)) from err
    if not isinstance(content, dict) or not isinstance(content.get("domains"), dict):
        raise DataError(f"{path} is not a benchmark file: it has no 'domains' mapping")
    domains = {
        name: _domain_from_json(name, entry, path)
        for name, entry in sorted(content["domains"].items())
    }
    return Benchmark(
        name=content.get("name", path.parent.name),
        domains=domains,
        image_size=int(content.get("image_size", 72)),
        crop_size=int(content.get("crop_size", 64)),
        source_domain=content.get("source_domain"),
        path=path,
    )


def load_benchmark(spec: str | Path) -> Benchmark:
    """Resolve ``"decathlon"``, a ``benchmark.json`` path, or a data root to its benchmark.

    A root without ``benchmark.json`` is taken to be the real Visual Decathlon.
    """
    if str(spec) == "decathlon":
        return decathlon_benchmark()
    path = Path(spec)
    if path.is_dir():
        candidate = path / BENCHMARK_FILE
        return read_benchmark(candidate) if candidate.is_file() else decathlon_benchmark()
    return read_benchmark(path)


def set_baseline_accuracies(path: str | Path, accuracies: dict[str, float]) -> None:
    """Write measured baseline top-1 accuracies (%) into a ``benchmark.json`` (atomically).

    Raises:
        ValueError: naming a domain the file does not hold, or an accuracy outside 0..100.
    """
    path = Path(path)
    content = read_json(path)
    for name, accuracy in accuracies.items():
        if name not in content["domains"]:
            raise ValueError(
                f"{path} has no domain {name!r}: it holds {sorted(content['domains'])}"
            )
        if not 0.0 <= float(accuracy) <= 100.0:
            raise ValueError(f"baseline accuracy {accuracy} of {name!r} is not a percentage")
        content["domains"][name]["baseline_accuracy"] = float(accuracy)
    write_json_atomic(path, content, indent=2)
