"""``lowres-digits``: scikit-learn's 8x8 digits (UCI, 1,797 images, values 0..16)."""

from __future__ import annotations

import numpy as np

from multidomain.data.offline.common import SourceImages, pick_per_class, resize_all

SOURCE = "scikit-learn load_digits (UCI optical digits, CC BY 4.0)"


def load(rng: np.random.Generator, per_class: int, size: int) -> SourceImages:
    """``per_class`` random 8x8 digits of each class, scaled to 0..255 and upscaled."""
    from sklearn.datasets import load_digits  # heavy import, only when this domain is built

    bunch = load_digits()
    labels = bunch.target.astype(np.int64)
    keep = pick_per_class(labels, per_class, rng)
    pixels = np.round(bunch.images[keep] * (255.0 / 16.0)).astype(np.uint8)
    return SourceImages(resize_all(pixels, size), labels[keep], [str(d) for d in range(10)], SOURCE)
