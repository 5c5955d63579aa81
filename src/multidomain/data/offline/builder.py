"""Build the mini-decathlon as a devkit tree (PAPER.md section 5), deterministically and resumably.

Layout under ``out``: ``annotations/<domain>_{train,val,test,test_stripped}.json``,
``data/<domain>/<split>/<n>.jpg`` (RGB, shorter side ``image_size``), ``benchmark.json``
(see ``multidomain.data.benchmark``) and ``.complete.json``, written last: a tree that has it
is reused when its build parameters, ``FORMAT_VERSION`` included, are the ones asked for (a
tree of an older format is rebuilt: format 2 gave the image ids the devkit's 200,000 offset).
Every file written is recorded with its SHA-256 (``record.py``): a rebuild, or the
resumption of a build that stopped half-way, deletes only files of ours that are unchanged,
and a non-empty folder without a record of ours is refused, never emptied. The folder's lock
(``multidomain.locks``) keeps a second builder out while one builds.
"""

from __future__ import annotations

import io
import logging
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
from multidomain.data.offline import (
    DEFAULT_VERSION,
    SOURCE_DOMAINS,
    DomainSpec,
    check_version,
    spec_by_name,
    version_specs,
)
from multidomain.data.offline.baselines import apply_shipped_baselines, fill_shipped_baselines
from multidomain.data.offline.common import SourceImages
from multidomain.data.offline.record import (
    BUILDING_MARKER,
    COMPLETE_MARKER,
    BuildJournal,
    refuse_foreign_folder,
    start_build,
)
from multidomain.errors import ConfigError
from multidomain.io import file_sha256
from multidomain.locks import folder_lock

logger = logging.getLogger(__name__)

__all__ = ["BUILDING_MARKER", "COMPLETE_MARKER", "is_complete", "prepare_offline"]
SPLIT_FRACTIONS = {"val": 0.2, "test": 0.2}  # the rest is train
JPEG_OPTIONS = {"quality": 95, "subsampling": 0}


def _params(
    image_size: int, seed: int, max_per_class: int | None, domains, version: int = DEFAULT_VERSION
) -> dict[str, Any]:
    return {
        "version": version,
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


def split_sizes(n: int, counts: tuple[int, int, int] | None) -> tuple[int, int]:
    """(val, test) images of a class of ``n``: ``counts`` = (train, val, test) per class
    (scaled down, at least one each, when the class has fewer), or version 1's fractions."""
    if n < 3:
        return 0, 0
    if counts is None:
        fractions = SPLIT_FRACTIONS["val"], SPLIT_FRACTIONS["test"]
    else:
        fractions = counts[1] / sum(counts), counts[2] / sum(counts)
        if n >= sum(counts):
            return counts[1], counts[2]
    n_val = max(1, round(n * fractions[0]))
    return n_val, min(max(1, round(n * fractions[1])), n - 1 - n_val)  # train keeps one


def split_indices(
    labels: np.ndarray, rng: np.random.Generator, counts: tuple[int, int, int] | None = None
) -> dict[str, np.ndarray]:
    """Class-balanced disjoint train/val/test indices, each split shuffled.

    ``counts``: (train, val, test) images per class; None: 60/20/20% (version 1).
    """
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val, n_test = split_sizes(len(members), counts)
        parts["val"].append(members[:n_val])
        parts["test"].append(members[n_val : n_val + n_test])
        parts["train"].append(members[n_val + n_test :])
    return {split: rng.permutation(np.concatenate(chunks)) for split, chunks in parts.items()}


def _rgb(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image).convert("RGB")


def _encode_jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    _rgb(image).save(buffer, "JPEG", **JPEG_OPTIONS)
    return buffer.getvalue()


def _write_image(journal: BuildJournal, name: str, image: np.ndarray) -> None:
    journal.write(name, _encode_jpeg(image))


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
    journal: BuildJournal, spec: DomainSpec, index: int, src: SourceImages, rng, submit
) -> dict[str, Any]:
    """Write one domain's images and annotation files; return its benchmark.json entry."""
    splits = split_indices(src.labels, rng, spec.split)
    categories = [
        {"id": category_id(index, c), "name": name} for c, name in enumerate(src.class_names)
    ]
    running = 0
    for split, members in splits.items():
        images, labels = [], []
        for member in members:
            running += 1
            name = f"data/{spec.name}/{split}/{running:07d}.jpg"
            submit(_write_image, journal, name, src.images[member])
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
        journal.write_json(annotation_path("", spec.name, split).as_posix(), document)
        if split == "test":
            stripped = split_document(images, None, categories, text + " (stripped)")
            name = annotation_path("", spec.name, split, stripped=True).as_posix()
            journal.write_json(name, stripped)
    mean, std = channel_stats(src.images[splits["train"]])
    licence = {} if src.licence is None else {"licence": src.licence}
    return {
        **licence,
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
    version: int = DEFAULT_VERSION,
) -> Path:
    """Build the mini-decathlon under ``out`` (or reuse a complete build); returns ``out``.

    Args:
        out: the root of the tree to write: a new or empty folder, or one of our builds
            (finished or not: only its own unchanged files are replaced).
        image_size: the side of the (square) images, the shorter side of the devkit's.
        seed: fixes every random choice: two builds with one seed are byte-identical.
        max_per_class: cap on images per class (small builds for tests); None: the defaults.
        domains: build only these domains (default: every installed source).
        force: rebuild even when a complete build with these parameters exists.
        workers: threads that encode the JPEG files.
        version: the mini-decathlon version (1: source animals; 2: source emoji, seven
            targets built like the Decathlon's), recorded in ``benchmark.json``.

    Raises:
        DataError: ``out`` is not empty and holds no build record of ours, or a file of the
            previous build was changed, or a foreign file is where the build writes one.
        StorageError: another process is building in ``out``.
    """
    if max_per_class is not None and max_per_class < 3:
        raise ConfigError(
            f"max_per_class={max_per_class} is too small: use at least 3, so that every class "
            "has train, val and test images"
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file, not a folder: give a new or empty folder")
    params = _params(image_size, seed, max_per_class, domains, check_version(version))
    if not force and is_complete(out, params):
        logger.info("%s already holds a complete mini-decathlon: reusing it", out)
        _refresh_baselines(out, params)
        return out
    specs = [spec_by_name(n, version) for n in domains] if domains else version_specs(version)
    start = time.perf_counter()
    refuse_foreign_folder(out)  # before the lock file is made in a folder that is not ours
    with folder_lock(out, "data build"), start_build(out, params) as journal:
        _build(journal, specs, params, workers)
        journal.finish(params)
    logger.info("built the mini-decathlon in %s in %.1f s", out, time.perf_counter() - start)
    return out


def _build(journal: BuildJournal, specs, params: dict[str, Any], workers: int) -> None:
    """Write every domain's images and annotations, then ``benchmark.json``."""
    size, seed, max_per_class = params["image_size"], params["seed"], params["max_per_class"]
    version = params["version"]
    sources = _load_sources(specs, seed, size, max_per_class)
    entries, futures = {}, []
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def submit(*task) -> None:
            futures.append(pool.submit(*task))

        for index, name in enumerate(sorted(sources)):
            spec, src, rng = sources[name]
            entries[name] = _write_domain(journal, spec, index, src, rng, submit)
            logger.info("%s: %d images, %d classes", name, len(src.labels), len(src.class_names))
    for future in futures:
        future.result()  # re-raise the first failed image write
    largest = max(entries, key=lambda name: sum(entries[name]["images"].values()))
    benchmark = {
        "name": "mini-decathlon",
        "version": version,
        "format_version": FORMAT_VERSION,
        "image_size": size,
        "crop_size": round(size * 64 / 72),
        "seed": seed,
        "source_domain": source if (source := SOURCE_DOMAINS[version]) in entries else largest,
        "domains": entries,
    }
    fill_shipped_baselines(benchmark, version, size, seed, max_per_class)
    journal.write_json(BENCHMARK_FILE, benchmark, indent=2)


def _refresh_baselines(out: Path, params: dict[str, Any]) -> None:
    """Fill newly shipped baselines into a finished build, keeping its record true."""
    path = out / BENCHMARK_FILE
    before = file_sha256(path)
    options = (params["version"], params["image_size"], params["seed"], params["max_per_class"])
    if not apply_shipped_baselines(out, *options):
        return
    marker = read_json(out / COMPLETE_MARKER)
    files = marker.get("files") or {}
    if files.get(BENCHMARK_FILE) == before:  # ours before the change, so ours after it
        files[BENCHMARK_FILE] = file_sha256(path)
        write_json_atomic(out / COMPLETE_MARKER, marker, indent=2)
