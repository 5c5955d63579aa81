"""What every offline source returns, and the small image helpers they share."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class SourceImages:
    """Square uint8 images of one domain, already at the target size.

    Attributes:
        images: (N, S, S) grey or (N, S, S, 3) RGB uint8 array.
        labels: (N,) class indices in ``0..len(class_names)-1``.
        class_names: one name per class.
        source: where the pixels come from (package, file, licence), for benchmark.json.
        licence: the licence of the pixels, recorded apart in benchmark.json (version 2 on;
            None: version 1's record, where ``source`` names it).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    source: str
    licence: str | None = None

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")


def package_dir(module: str) -> Path:
    """Folder of an installed package, found without importing (executing) it.

    Raises:
        FileNotFoundError: naming the package and how to install it.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {module!r} is not installed: run `make install` (it installs the "
            "packages whose files hold the mini-decathlon's images)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def pick_per_class(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to ``per_class`` random samples of every class, grouped by class."""
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.concatenate(chosen)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 grey or RGB image to ``size`` x ``size`` (bilinear)."""
    pil = Image.fromarray(image)
    return np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR))


def resize_all(images: np.ndarray, size: int) -> np.ndarray:
    """``resize_square`` over a stack of images."""
    return np.stack([resize_square(img, size) for img in images])
