"""What a probe set is for network dissection (PAPER.md section 8): images, concepts and
pixel-level concept labels, read in batches.

Labels follow Broden's dense layout: per image, ``D`` label channels at the mask size, each
pixel holding a concept index (``0`` = no concept; concept ``j`` of :class:`Concepts` is
``j + 1``), and one flag per category saying whether the category is annotated in the image
(the union of a unit's IoU with a concept counts only the images where the concept's category
is annotated).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Concepts:
    """The concepts of a probe set.

    Attributes:
        names: one name per concept.
        categories: the category of each concept (an entry of ``category_names``).
        category_names: the categories, in order from low to high level.
    """

    names: tuple[str, ...]
    categories: tuple[str, ...]
    category_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.categories):
            raise ValueError(f"{len(self.names)} concept names, {len(self.categories)} categories")
        unknown = set(self.categories) - set(self.category_names)
        if unknown:
            raise ValueError(f"concepts name unknown categories {sorted(unknown)}")

    def __len__(self) -> int:
        return len(self.names)

    def category_index(self) -> np.ndarray:
        """``(C,)`` index into ``category_names`` of each concept's category."""
        return np.array([self.category_names.index(c) for c in self.categories], dtype=np.int64)


@dataclass
class ProbeBatch:
    """A batch of probe images with their labels.

    Attributes:
        indices: ``(N,)`` position of each image in the probe set.
        images: ``(N, H, W, 3)`` uint8 RGB.
        labels: ``(N, D, Hm, Wm)`` int16 concept index + 1 per label channel (0: none).
        annotated: ``(N, G)`` bool, category g annotated in image n.
    """

    indices: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    annotated: np.ndarray


class ProbeSet(Protocol):
    """A probe set: its concepts, its size and its images in batches, in a fixed order."""

    concepts: Concepts
    description: str

    def __len__(self) -> int: ...

    @property
    def mask_size(self) -> tuple[int, int]: ...

    def batches(self, batch_size: int) -> Iterator[ProbeBatch]: ...

    def batch(self, indices: np.ndarray) -> ProbeBatch: ...


def concept_coverage(probe: ProbeSet, batch_size: int = 64) -> np.ndarray:
    """``(C,)`` fraction of the annotated pixels of each concept's category that it covers
    (pixels in images where the category is annotated)."""
    concepts = probe.concepts
    category = concepts.category_index()
    pixels = np.zeros(len(concepts), dtype=np.float64)
    annotated = np.zeros(len(concepts.category_names), dtype=np.float64)
    area = probe.mask_size[0] * probe.mask_size[1]
    for batch in probe.batches(batch_size):
        for channel in range(batch.labels.shape[1]):
            codes = batch.labels[:, channel].reshape(-1).astype(np.int64)
            pixels += np.bincount(codes, minlength=len(concepts) + 1)[1:]
        annotated += batch.annotated.sum(axis=0) * area
    return pixels / np.maximum(annotated[category], 1.0)
