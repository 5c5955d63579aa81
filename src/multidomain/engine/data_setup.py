"""Data for a run: the devkit root (building the offline mini-decathlon when asked), the
benchmark, and the training / validation samples of the run's domains."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from multidomain.data.benchmark import Benchmark
from multidomain.data.dataset import DecathlonDataset
from multidomain.data.loader import build_datasets, default_workers
from multidomain.engine.batches import SeededSamples
from multidomain.engine.config import DataConfig
from multidomain.errors import ConfigError
from multidomain.io import read_json
from multidomain.models.cards import DomainCard, Preprocess

logger = logging.getLogger(__name__)


def resolve_root(data: DataConfig) -> Path:
    """The data root; with ``prepare_offline``, the mini-decathlon is built there first when it
    is missing, and a build of ours that stopped half-way is finished.

    A complete build is reused as built (a smaller build given as the root is the user's data,
    not to be rebuilt at the recipe's size), and so is a devkit tree without a build record:
    a copy of a build, or any tree of the user's, is data to use as it is, never rebuilt.
    """
    root = Path(data.root).expanduser()
    if data.prepare_offline:
        _prepare_offline_root(root, data.offline_image_size, data.offline_version)
    if not (root / "annotations").is_dir():
        raise FileNotFoundError(
            f"no devkit tree at {root} (no annotations/ folder): point data.root at the Visual "
            "Decathlon root, or build the offline mini-decathlon with "
            f"`multidomain data prepare-offline --out {root}`"
        )
    return root


_BUILD_OPTIONS = ("image_size", "seed", "max_per_class", "domains")


def _build_options(params: dict) -> dict:
    # a build made before versions existed is a version-1 build
    return {"version": params.get("version", 1), **{key: params[key] for key in _BUILD_OPTIONS}}


def _check_version(root: Path, options: dict, wanted: int) -> None:
    if options["version"] != wanted:
        raise ConfigError(
            f"{root} holds mini-decathlon version {options['version']}, but "
            f"data.offline_version={wanted}: point data.root at another folder (each version "
            f"builds into its own), or set data.offline_version={options['version']}"
        )


def _prepare_offline_root(root: Path, image_size: int, version: int) -> None:
    from multidomain.data.offline.builder import COMPLETE_MARKER, is_complete, prepare_offline
    from multidomain.data.offline.record import building_params, has_record

    if is_complete(root):
        # reusing still fills in the shipped baselines
        built = _build_options(read_json(root / COMPLETE_MARKER, "build marker")["params"])
        _check_version(root, built, version)
        prepare_offline(root, **built)
    elif has_record(root):
        started = building_params(root)
        logger.info("%s holds a mini-decathlon build that stopped half-way: finishing it", root)
        if started is None:  # a journal of an older version: the recipe's build
            prepare_offline(root, image_size=image_size, version=version)
        else:
            options = _build_options(started)
            _check_version(root, options, version)
            prepare_offline(root, **options)
    elif (root / "annotations").is_dir():
        logger.info(
            "%s is a devkit tree without a build record of ours: using it as it is "
            "(data.prepare_offline builds nothing here)",
            root,
        )
    else:
        prepare_offline(root, image_size=image_size, version=version)


def check_domains(benchmark: Benchmark, domains: list[str]) -> None:
    for domain in domains:
        benchmark.domain(domain)  # raises naming the valid domains


def workers(data: DataConfig, device: torch.device) -> int:
    """Loader processes: ``data.workers`` if set; else none when training on the CPU (a worker
    competes with the training threads for the same cores, see BENCHMARKS.md) and
    ``default_workers()`` when training on a GPU."""
    if data.workers is not None:
        return data.workers
    return 0 if device.type == "cpu" else default_workers()


def cache_images(data: DataConfig, workers: int, samples: list[SeededSamples]) -> bool:
    """Whether the run keeps decoded images in memory (``data.cache_images``); ``auto``: when
    loading runs in the training process (a worker would hold its own copy) and they fit in
    ``data.cache_limit_gb``. Decoding is most of the loading time of small images."""
    if data.cache_images != "auto":
        return bool(data.cache_images)
    if workers > 0:
        return False
    size = sum(dataset.decoded_bytes() for s in samples for dataset in s.datasets)
    if size > data.cache_limit_gb * 2**30:
        logger.info(
            "not caching decoded images: they would take %.1f GB, over data.cache_limit_gb=%s",
            size / 2**30,
            data.cache_limit_gb,
        )
        return False
    return True


def enable_cache(samples: list[SeededSamples]) -> None:
    for s in samples:
        for dataset in s.datasets:
            dataset.enable_cache()


def build_samples(
    root: Path, data: DataConfig, benchmark: Benchmark, seed: int
) -> tuple[SeededSamples, SeededSamples | None]:
    """Training samples and validation samples (None under the ``trainval`` protocol)."""
    train, val = {}, {}
    for domain in data.domains:
        train[domain], val[domain] = build_datasets(
            root, domain, data.protocol, skip_bad=data.skip_bad, benchmark=benchmark
        )
        if domain in data.train_per_class:
            train[domain].keep_first_per_class(data.train_per_class[domain])
    validation = SeededSamples(val) if data.protocol == "train" else None
    return SeededSamples(train, seed=seed), validation


def domain_cards(benchmark: Benchmark, samples: SeededSamples) -> dict[str, DomainCard]:
    """The card of each domain of ``samples`` (:func:`domain_card`), saved with the model for
    ``predict``."""
    return {
        domain: domain_card(benchmark, domain, dataset)
        for domain, dataset in zip(samples.domains, samples.datasets, strict=True)
    }


def domain_card(benchmark: Benchmark, domain: str, dataset: DecathlonDataset) -> DomainCard:
    """``domain``'s class names (the categories of ``dataset`` in class order) and its
    benchmark's evaluation preprocessing."""
    info = benchmark.domain(domain)
    preprocess = Preprocess(
        info.crop, info.mean, info.std, benchmark.image_size, benchmark.crop_size
    )
    classes = tuple(str(category["name"]) for category in dataset.categories)
    return DomainCard(classes, preprocess)


def split_samples(
    root: Path,
    domains: list[str],
    split: str,
    benchmark: Benchmark,
    skip_bad: bool = False,
    kept: dict[tuple, DecathlonDataset] | None = None,
) -> SeededSamples:
    """Evaluation samples (recipe test transform) of one split for several domains.

    ``kept``: where to keep each domain's dataset, its decoded images included, for the next
    call on the same root and split (a compare evaluates many runs on one test split: each
    file is then decoded once; the images are those decoding gives, so the results are too).
    """
    return SeededSamples(
        {
            domain: _split_dataset(root, domain, split, benchmark, skip_bad, kept)
            for domain in domains
        }
    )


def _split_dataset(root, domain, split, benchmark, skip_bad, kept) -> DecathlonDataset:
    key = (str(Path(root).resolve()), domain, split, skip_bad)
    if kept is not None and key in kept:
        return kept[key]
    dataset = DecathlonDataset(
        root, domain, split, train=False, skip_bad=skip_bad, benchmark=benchmark,
        cache_images=kept is not None,
    )  # fmt: skip
    if kept is not None:
        kept[key] = dataset
    return dataset


def skipped_images(*samples: SeededSamples | None) -> dict[str, int]:
    """Undecodable images skipped so far (``data.skip_bad``), per domain of the given samples.

    Counts each domain's distinct ``DecathlonDataset.bad_files`` summed over ``samples`` (e.g. the
    training and the validation samples; None entries are ignored). Every domain is listed,
    with 0 when nothing was skipped. The counts are of this process: images skipped inside
    loader worker processes are not seen here.
    """
    counts: dict[str, int] = {}
    for sample in samples:
        if sample is None:
            continue
        for domain, dataset in zip(sample.domains, sample.datasets, strict=True):
            counts[domain] = counts.get(domain, 0) + len(set(getattr(dataset, "bad_files", ())))
    return counts
