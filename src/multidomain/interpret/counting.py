"""Streamed IoU counts of units against concepts (PAPER.md section 8).

For unit k and concept c, over the probe set::

    IoU[k, c] = sum |M_k & L_c| / (sum_{images where c's category is annotated} |M_k| + sum |L_c|
                                    - sum |M_k & L_c|)

``M_k`` is the unit's thresholded, upsampled mask and ``L_c`` the concept's mask. Only three
counters are kept (intersections ``(K, C)``, unit pixels per category ``(K, G)``, concept pixels
``(C,)``), once for the whole set and once per bootstrap replicate; nothing per image survives a
batch.
"""

from __future__ import annotations

import torch

from multidomain.interpret.probe import Concepts


class IoUCounter:
    """IoU counters of ``units`` units against ``concepts``; ``replicates`` bootstrap copies."""

    def __init__(self, units: int, concepts: Concepts, replicates: int = 0) -> None:
        self.units, self.concepts = units, concepts
        self.category = torch.from_numpy(concepts.category_index())
        c, g, b = len(concepts), len(concepts.category_names), replicates
        # index 0: the probe set itself; 1..B: bootstrap replicates
        self.intersection = torch.zeros(b + 1, units, c, dtype=torch.float64)
        self.unit_pixels = torch.zeros(b + 1, units, g, dtype=torch.float64)
        self.concept_pixels = torch.zeros(b + 1, c, dtype=torch.float64)

    def update(
        self,
        image: torch.Tensor,
        unit: torch.Tensor,
        masks: torch.Tensor,
        labels: torch.Tensor,
        annotated: torch.Tensor,
        weights: torch.Tensor,
    ) -> None:
        """Count the non-empty masks of one batch; every other (image, unit) mask is empty.

        Args:
            image: ``(S,)`` batch position of each mask's image.
            unit: ``(S,)`` unit of each mask.
            masks: ``(S, P)`` bool masks over the P mask pixels.
            labels: ``(N, D, P)`` int64 concept codes (0 none, concept j is j + 1).
            annotated: ``(N, G)`` bool, categories annotated per image.
            weights: ``(B + 1, N)`` float64, row 0 all ones, then the replicates' weights.
        """
        row, pixel = masks.nonzero(as_tuple=True)
        inter = _intersections(image, row, pixel, masks.shape[0], labels, len(self.concepts))
        area = torch.bincount(row, minlength=masks.shape[0]).double()
        pixels = area[:, None] * annotated[image]  # (S, G) mask pixels per annotated category
        w = weights[:, image]  # (B + 1, S)
        self.intersection.index_add_(1, unit, w[:, :, None] * inter[None])
        self.unit_pixels.index_add_(1, unit, w[:, :, None] * pixels[None])

    def count_concepts(self, labels: torch.Tensor, weights: torch.Tensor) -> None:
        """Add one batch's concept pixels (once a batch, whatever the unit chunks)."""
        self.concept_pixels += weights @ _concept_pixels(labels, len(self.concepts))

    def iou(self) -> torch.Tensor:
        """``(B + 1, K, C)`` IoU of each unit with each concept, per replicate (0: the set)."""
        unit = self.unit_pixels[:, :, self.category]  # (B + 1, K, C): the concept's category
        union = unit + self.concept_pixels[:, None, :] - self.intersection
        return torch.where(union > 0, self.intersection / union.clamp(min=1e-12), 0.0)


def _intersections(image, row, pixel, count: int, labels: torch.Tensor, concepts: int):
    """``(S, C)`` float64 pixels of each of the ``count`` masks carrying each concept, from
    the masked pixels ``(row, pixel)``.

    The masks are sparse (about 0.5% of the pixels): the labels are read at the masked pixels
    only and counted with one bincount, instead of a dense (S x P) @ (P x C) product.
    """
    _, depth, area = labels.shape
    # flat positions of the masked pixels in every label channel: (D, M)
    where = (image[row] * depth)[None, :] + torch.arange(depth)[:, None]
    codes = labels.reshape(-1)[(where * area + pixel[None, :]).reshape(-1)]
    slots = (row * (concepts + 1)).repeat(depth) + codes
    counts = torch.bincount(slots, minlength=count * (concepts + 1)).double()
    return counts.view(count, concepts + 1)[:, 1:]


def _concept_pixels(labels: torch.Tensor, concepts: int) -> torch.Tensor:
    """``(N, C)`` float64 pixels of each concept per image."""
    n = labels.shape[0]
    offset = torch.arange(n)[:, None, None] * (concepts + 1)
    counts = torch.bincount((labels + offset).reshape(-1), minlength=n * (concepts + 1))
    return counts.double().view(n, concepts + 1)[:, 1:]
