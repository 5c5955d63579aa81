"""Evaluation protocols and DataLoaders for devkit trees.

Protocols (never mixed silently; the official code trained on train+val and then "validated" on
val, PAPER.md section 4):

- ``train``: train on the train split, validate on val (model selection);
- ``trainval``: train on train+val, no validation split (the challenge protocol; test is held out).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from multidomain.data.benchmark import Benchmark, load_benchmark
from multidomain.data.dataset import DecathlonDataset
from multidomain.errors import ConfigError

PROTOCOLS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "train": (("train",), "val"),
    "trainval": (("train", "val"), None),
}


def protocol_splits(protocol: str) -> tuple[tuple[str, ...], str | None]:
    """``(train_splits, val_split_or_None)`` of a protocol.

    Raises:
        ValueError: naming the valid protocols.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"unknown protocol {protocol!r}: choose 'train' (train on train, validate on val) "
            "or 'trainval' (train on train+val, no validation: the challenge protocol)"
        )
    return PROTOCOLS[protocol]


def build_datasets(
    root: str | Path,
    domain: str,
    protocol: str = "train",
    skip_bad: bool = False,
    benchmark: Benchmark | None = None,
) -> tuple[DecathlonDataset, DecathlonDataset | None]:
    """The training dataset and the validation dataset (None under ``trainval``) of a domain."""
    train_splits, val_split = protocol_splits(protocol)
    benchmark = benchmark or load_benchmark(root)
    train = DecathlonDataset(root, domain, train_splits, skip_bad=skip_bad, benchmark=benchmark)
    val = None
    if val_split is not None:
        val = DecathlonDataset(root, domain, val_split, skip_bad=skip_bad, benchmark=benchmark)
    return train, val


def default_workers() -> int:
    """Loader processes: the CPU count minus one for the training process, at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; numpy and random follow it.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    workers: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    drop_last: bool | None = None,
) -> DataLoader:
    """A DataLoader with the project's defaults.

    Args:
        dataset: e.g. a ``DecathlonDataset``.
        batch_size: images per batch.
        train: shuffle (with a generator seeded by ``seed``) and drop the last partial batch.
        workers: loader processes; default ``default_workers()``; 0 loads in this process.
        seed: seeds the shuffling order and the workers' augmentation.
        device: pin memory only when it is a CUDA device (default: CUDA when available).
        drop_last: override the ``train`` default.
    """
    workers = default_workers() if workers is None else workers
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train if drop_last is None else drop_last,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
        generator=generator,
        worker_init_fn=_seed_worker if workers > 0 else None,
    )
