"""``photos``: patches of colour photographs that ship with scikit-image and scikit-learn
(version 2). One class per photograph: a patch of random size, position and mirror, resized.

The Decathlon's natural-image targets (aircraft, flowers, ucf101) have no packaged counterpart;
these are the natural colour photographs the packages hold.
"""

from __future__ import annotations

import numpy as np

from multidomain.data.offline.common import SourceImages, resize_square

SOURCE = (
    "scikit-image data astronaut, chelsea, coffee, hubble_deep_field, retina, rocket "
    "(public domain / CC0); scikit-learn sample images china, flower (CC BY 2.0); patches"
)
LICENCE = "public domain / CC0 (scikit-image photographs); CC BY 2.0 (scikit-learn china, flower)"
_PATCH = (0.2, 0.5)  # patch side as a fraction of the photograph's shorter side


def photographs() -> dict[str, np.ndarray]:
    """``{name: (H, W, 3) uint8}`` of the eight photographs, in class order."""
    from skimage import data
    from sklearn.datasets import load_sample_image

    photos = {
        name: getattr(data, name)()
        for name in ("astronaut", "chelsea", "coffee", "hubble_deep_field", "retina", "rocket")
    }
    photos.update({name: load_sample_image(f"{name}.jpg") for name in ("china", "flower")})
    return dict(sorted(photos.items()))


def cut_patch(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square patch of ``photo``, maybe mirrored, resized to ``size``."""
    side = int(min(photo.shape[:2]) * rng.uniform(*_PATCH))
    top = int(rng.integers(0, photo.shape[0] - side + 1))
    left = int(rng.integers(0, photo.shape[1] - side + 1))
    patch = photo[top : top + side, left : left + side]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return resize_square(np.ascontiguousarray(patch), size)


def load(rng: np.random.Generator, per_class: int, size: int) -> SourceImages:
    """``per_class`` patches of every photograph."""
    photos = photographs()
    images = [cut_patch(p, size, rng) for p in photos.values() for _ in range(per_class)]
    labels = np.repeat(np.arange(len(photos), dtype=np.int64), per_class)
    return SourceImages(np.stack(images), labels, list(photos), SOURCE, LICENCE)
