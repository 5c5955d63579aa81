"""Build the mini-decathlon as a devkit tree (PAPER.md section 5), deterministically and resumably.

Layout under ``out``: ``annotations/<domain>_{train,val,test,test_stripped}.json``,
``data/<domain>/<split>/<n>.jpg`` (RGB, shorter side ``image_size``), ``benchmark.json``
(see ``multidomain.data.benchmark``) and ``.complete.json``, written last: a tree that has it
is reused, one that lacks it (a build that stopped half-way) is rebuilt.
"""

from __future__ import annotations

import logging
import shutil
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from multidomain.data.benchmark import BENCHMARK_FILE, FORMAT_VERSION
from multidomain.data.devkit import (
    annotation_path,
    category_id,
    image_id,
    read_json,
    split_document,
    write_json_atomic,
)
from multidomain.data.offline import DOMAIN_SPECS, SOURCE_DOMAIN, DomainSpec, spec_by_name
from multidomain.data.offline.baselines import apply_shipped_baselines
from multidomain.data.offline.common import SourceImages

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete.json"
BUILDING_MARKER = ".building"
SPLIT_FRACTIONS = {"val": 0.2, "test": 0.2}  # the rest is train
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}


def _params(image_size: int, seed: int, max_per_class: int | None, domains) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "image_size": image_size,
        "seed": seed,
        "max_per_class": max_per_class,
        "domains": sorted(domains) if domains else None,
    }


def is_complete(out: str | Path, params: dict[str, Any] | None = None) -> bool:
    """Whether ``out`` holds a finished build (with the given parameters, when given)."""
    marker = Path(out) / COMPLETE_MARKER
    if not marker.is_file():
        return False
    return params is None or read_json(marker).get("params") == params


def _is_mini_benchmark(path: Path) -> bool:
    try:
        return path.is_file() and read_json(path).get("name") == "mini-decathlon"
    except (ValueError, AttributeError):
        return False


def _claim(out: Path) -> None:
    """Mark ``out`` as ours and clear a previous build; refuse a foreign non-empty folder."""
    ours = any((out / name).exists() for name in (COMPLETE_MARKER, BUILDING_MARKER)) or (
        _is_mini_benchmark(out / BENCHMARK_FILE)
    )
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise ValueError(
            f"{out} is not empty and holds no mini-decathlon build: pick a new or empty folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / BUILDING_MARKER).touch()
    (out / COMPLETE_MARKER).unlink(missing_ok=True)
    for name in ("annotations", "data"):
        shutil.rmtree(out / name, ignore_errors=True)
    (out / BENCHMARK_FILE).unlink(missing_ok=True)


def split_indices(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Class-balanced disjoint train/val/test indices, each split shuffled."""
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n = len(members)
        n_val = max(1, round(n * SPLIT_FRACTIONS["val"])) if n >= 3 else 0
        n_test = max(1, round(n * SPLIT_FRACTIONS["test"])) if n >= 3 else 0
        parts["val"].append(members[:n_val])
        parts["test"].append(members[n_val : n_val + n_test])
        parts["train"].append(members[n_val + n_test :])
    return {split: rng.permutation(np.concatenate(chunks)) for split, chunks in parts.items()}


def _rgb(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image).convert("RGB")


def _save(path: Path, image: np.ndarray) -> None:
    _rgb(image).save(path, "JPEG", **JPEG_OPTIONS)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel RGB mean and std in [0, 1] of a uint8 stack (grey counts for all three)."""
    pixels = images.reshape(len(images), -1, images.shape[-1] if images.ndim == 4 else 1)
    values = pixels.astype(np.float64) / 255.0
    mean = values.mean(axis=(0, 1))
    std = values.std(axis=(0, 1))
    if len(mean) == 1:
        mean, std = np.repeat(mean, 3), np.repeat(std, 3)
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


def _write_domain(
    out: Path, spec: DomainSpec, index: int, src: SourceImages, rng, submit
) -> dict[str, Any]:
    """Write one domain's images and annotation files; return its benchmark.json entry."""
    splits = split_indices(src.labels, rng)
    categories = [
        {"id": category_id(index, c), "name": name} for c, name in enumerate(src.class_names)
    ]
    running = 0
    for split, members in splits.items():
        folder = out / "data" / spec.name / split
        folder.mkdir(parents=True, exist_ok=True)
        images, labels = [], []
        for member in members:
            running += 1
            name = f"data/{spec.name}/{split}/{running:07d}.jpg"
            submit(_save, out / name, src.images[member])
            size = src.images[member].shape
            images.append(
                {
                    "id": image_id(index, running),
                    "file_name": name,
                    "width": size[1],
                    "height": size[0],
                }
            )
            labels.append(category_id(index, int(src.labels[member])))
        text = f"mini-decathlon {spec.name} {split}"
        document = split_document(images, labels, categories, text)
        write_json_atomic(annotation_path(out, spec.name, split), document)
        if split == "test":
            stripped = split_document(images, None, categories, text + " (stripped)")
            write_json_atomic(annotation_path(out, spec.name, split, stripped=True), stripped)
    mean, std = channel_stats(src.images[splits["train"]])
    return {
        "num_classes": len(src.class_names),
        "mean": mean,
        "std": std,
        "crop": spec.crop,
        "baseline_accuracy": None,
        "images": {split: len(members) for split, members in splits.items()},
        "source": src.source,
    }


def _domain_rng(seed: int, name: str) -> np.random.Generator:
    # Each domain draws from its own stream: adding or removing a domain changes no other one.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _load_sources(specs, seed: int, size: int, max_per_class: int | None) -> dict:
    sources = {}
    for spec in specs:
        per_class = min(spec.per_class, max_per_class or spec.per_class)
        rng = _domain_rng(seed, spec.name)
        src = spec.load(rng, per_class, size)
        if src is None:
            logger.info("skipping %s: its source is not installed", spec.name)
            continue
        sources[spec.name] = (spec, src, rng)
    return sources


def prepare_offline(
    out: str | Path,
    image_size: int = 72,
    seed: int = 0,
    max_per_class: int | None = None,
    domains: list[str] | None = None,
    force: bool = False,
    workers: int = 2,
) -> Path:
    """Build the mini-decathlon under ``out`` (or reuse a complete build); returns ``out``.

    Args:
        out: the root of the tree to write.
        image_size: the side of the (square) images, the shorter side of the devkit's.
        seed: fixes every random choice: two builds with one seed are byte-identical.
        max_per_class: cap on images per class (small builds for tests); None: the defaults.
        domains: build only these domains (default: every installed source).
        force: rebuild even when a complete build with these parameters exists.
        workers: threads that encode the JPEG files.
    """
    if max_per_class is not None and max_per_class < 3:
        raise ValueError(
            f"max_per_class={max_per_class} is too small: use at least 3, so that every class "
            "has train, val and test images"
        )
    out = Path(out)
    params = _params(image_size, seed, max_per_class, domains)
    if not force and is_complete(out, params):
        logger.info("%s already holds a complete mini-decathlon: reusing it", out)
        apply_shipped_baselines(out, image_size, seed, max_per_class)
        return out
    specs = [spec_by_name(name) for name in domains] if domains else list(DOMAIN_SPECS)
    start = time.perf_counter()
    _claim(out)
    sources = _load_sources(specs, seed, image_size, max_per_class)
    entries, futures = {}, []
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def submit(*task) -> None:
            futures.append(pool.submit(*task))

        for index, name in enumerate(sorted(sources)):
            spec, src, rng = sources[name]
            entries[name] = _write_domain(out, spec, index, src, rng, submit)
            logger.info("%s: %d images, %d classes", name, len(src.labels), len(src.class_names))
    for future in futures:
        future.result()  # re-raise the first failed image write
    largest = max(entries, key=lambda name: sum(entries[name]["images"].values()))
    benchmark = {
        "name": "mini-decathlon",
        "format_version": FORMAT_VERSION,
        "image_size": image_size,
        "crop_size": round(image_size * 64 / 72),
        "seed": seed,
        "source_domain": SOURCE_DOMAIN if SOURCE_DOMAIN in entries else largest,
        "domains": entries,
    }
    write_json_atomic(out / BENCHMARK_FILE, benchmark, indent=2)
    apply_shipped_baselines(out, image_size, seed, max_per_class)
    write_json_atomic(out / COMPLETE_MARKER, {"params": params}, indent=2)
    (out / BUILDING_MARKER).unlink(missing_ok=True)
    logger.info("built the mini-decathlon in %s in %.1f s", out, time.perf_counter() - start)
    return out
