"""``animals``: animal silhouettes of the animal-mnist package (10 classes, 1,000 each).

The package's loader imports tensorflow, so the two gzipped pickles are read directly from its
folder, with an unpickler that accepts numpy arrays only (never a general ``pickle.load``).
"""

from __future__ import annotations

import gzip
import pickle

import numpy as np

from multidomain.data.offline.common import SourceImages, package_dir, pick_per_class, resize_all

CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
SOURCE = "animal-mnist 0.4 data/Animal_MNIST/animal_{data,label}_version_3.gz (MIT)"
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays allowed")
        return super().find_class(module, name)


def _read_array(name: str) -> np.ndarray:
    path = package_dir("animal_mnist") / "data" / "Animal_MNIST" / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} missing: reinstall with `pip install --no-deps animal-mnist==0.4`"
        )
    with gzip.open(path, "rb") as handle:
        return np.asarray(_ArrayUnpickler(handle).load())


def load(rng: np.random.Generator, per_class: int, size: int) -> SourceImages:
    """``per_class`` random silhouettes of each animal, upscaled to ``size``."""
    images = _read_array("animal_data_version_3.gz")  # (10000, 28, 28) uint8
    labels = _read_array("animal_label_version_3.gz").astype(np.int64)
    keep = pick_per_class(labels, per_class, rng)
    return SourceImages(resize_all(images[keep], size), labels[keep], list(CLASSES), SOURCE)
