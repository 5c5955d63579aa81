"""``fashion``: Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package, when installed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from multidomain.data.offline.common import SourceImages, pick_per_class, resize_all

FOLDER = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle-boot"]  # fmt: skip
SOURCE = "Fashion-MNIST, Debian dataset-fashion-mnist (MIT)"


def read_idx(path: str | Path, header: int) -> np.ndarray:
    """The uint8 payload of a gzipped IDX file after its ``header`` bytes (16 images, 8 labels)."""
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=header)


def load(
    rng: np.random.Generator, per_class: int, size: int, folder: Path = FOLDER
) -> SourceImages | None:
    """``per_class`` random items of each class, or None when the package is not installed."""
    image_file = folder / "train-images-idx3-ubyte.gz"
    if not image_file.is_file():
        return None
    images = read_idx(image_file, 16).reshape(-1, 28, 28)
    labels = read_idx(folder / "train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    keep = pick_per_class(labels, per_class, rng)
    return SourceImages(resize_all(images[keep], size), labels[keep], list(CLASSES), SOURCE)
