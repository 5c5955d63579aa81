"""The mini-decathlon's score baselines: constants of the benchmark shipped with the project.

As for the Visual Decathlon (PAPER.md section 6), a domain's baseline is the test accuracy of the
pretrained network with every parameter fine-tuned on that domain alone. They were measured once
with ``multidomain baseline`` (the file records the command, recipe and date) and are written
into every matching build's ``benchmark.json``, so that every score is on the same scale.

A build matches by mini-decathlon version, image size and seed, not by build format: another
version has other images (no build gets another version's baselines), while a format change
that moves no image and no label (format 2 only added the devkit's 200,000 to the image ids)
leaves the measured accuracies valid, so they keep applying to the rebuilt tree.
"""

from __future__ import annotations

import logging
from pathlib import Path

from multidomain.data.benchmark import BENCHMARK_FILE
from multidomain.data.devkit import read_json, write_json_atomic

logger = logging.getLogger(__name__)

SHIPPED = Path(__file__).with_name("baselines.json")


def shipped_baselines(
    version: int, image_size: int, seed: int, max_per_class: int | None
) -> dict[str, float]:
    """Measured baseline top-1 (%) per domain for a build with these parameters ({} if none).

    An entry without a ``data_version`` matches no build."""
    if max_per_class is not None or not SHIPPED.is_file():
        return {}
    for build in read_json(SHIPPED)["builds"]:
        key = (build.get("data_version"), build["image_size"], build["seed"])
        if key == (version, image_size, seed):
            return {d: float(a) for d, a in build["baseline_accuracy"].items()}
    return {}


def fill_shipped_baselines(
    content: dict, version: int, image_size: int, seed: int, max_per_class: int | None
) -> bool:
    """Fill the missing baselines of a ``benchmark.json`` content; returns whether any was."""
    values = shipped_baselines(version, image_size, seed, max_per_class)
    changed = False
    for name, entry in content["domains"].items():
        if entry.get("baseline_accuracy") is None and name in values:
            entry["baseline_accuracy"] = values[name]
            changed = True
    return changed


def apply_shipped_baselines(
    root: Path, version: int, image_size: int, seed: int, max_per_class: int | None
) -> bool:
    """Fill the missing baselines of ``root/benchmark.json`` from the shipped constants;
    returns whether the file changed."""
    path = Path(root) / BENCHMARK_FILE
    content = read_json(path)
    changed = fill_shipped_baselines(content, version, image_size, seed, max_per_class)
    if changed:
        write_json_atomic(path, content, indent=2)
        logger.info("filled the shipped baselines into %s", path)
    return changed
