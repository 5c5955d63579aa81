"""``faces``: scikit-image's LFW subset, 100 faces and 100 non-faces (25x25)."""

from __future__ import annotations

import numpy as np

from multidomain.data.offline.common import SourceImages, pick_per_class, resize_all

SOURCE = "scikit-image data.lfw_subset (Labeled Faces in the Wild, research use)"


def load(rng: np.random.Generator, per_class: int, size: int) -> SourceImages:
    """Up to ``per_class`` faces and non-faces, upscaled to ``size``."""
    from skimage import data

    images = data.lfw_subset()  # (200, 25, 25) float in [0, 1]
    labels = np.array([0] * 100 + [1] * 100, dtype=np.int64)
    keep = pick_per_class(labels, per_class, rng)
    pixels = np.round(images[keep] * 255.0).astype(np.uint8)
    return SourceImages(resize_all(pixels, size), labels[keep], ["face", "non-face"], SOURCE)
