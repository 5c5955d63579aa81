"""Streamed IoU counts of units against concepts (PAPER.md section 8).

For unit k and concept c, over the probe set::

    IoU[k, c] = sum |M_k & L_c| / (sum_{images where c's category is annotated} |M_k| + sum |L_c|
                                    - sum |M_k & L_c|)

``M_k`` is the unit's thresholded, upsampled mask and ``L_c`` the concept's mask. Only three
counters are kept (intersections ``(K, C)``, unit pixels per category ``(K, G)``, concept pixels
``(C,)``), once for the whole set and once per bootstrap replicate; nothing per image survives a
batch.

Intersections are counted as a product of binary matrices, masks ``(S, P)`` @ concept
indicators ``(P, C)``, in float32: the counts are integers below 2**24, so they are exact, and
the weighted sums into the float64 counters (integer Poisson weights) are exact too.
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

    def add(
        self,
        intersection: torch.Tensor,
        area: torch.Tensor,
        annotated: torch.Tensor,
        weights: torch.Tensor,
    ) -> None:
        """Add one batch's mask counts.

        Args:
            intersection: ``(N, K, C)`` pixels of unit k's mask in image n carrying concept c.
            area: ``(N, K)`` pixels of unit k's mask in image n.
            annotated: ``(N, G)`` bool, categories annotated per image.
            weights: ``(B + 1, N)`` float64, row 0 all ones, then the replicates' weights.
        """
        n, k, c = intersection.shape
        pixels = area.double()[:, :, None] * annotated[:, None, :]  # (N, K, G)
        self.intersection += (weights @ intersection.double().reshape(n, k * c)).view(-1, k, c)
        self.unit_pixels += (weights @ pixels.reshape(n, -1)).view(-1, k, pixels.shape[2])

    def update(
        self,
        image: torch.Tensor,
        unit: torch.Tensor,
        masks: torch.Tensor,
        labels: torch.Tensor,
        annotated: torch.Tensor,
        weights: torch.Tensor,
    ) -> None:
        """Count the masks of some (image, unit) pairs; every other pair's mask is empty.

        Args:
            image: ``(S,)`` batch position of each mask's image.
            unit: ``(S,)`` unit of each mask (no pair twice).
            masks: ``(S, P)`` bool masks over the P mask pixels.
            labels: ``(N, D, P)`` int64 concept codes (0 none, concept j is j + 1).
            annotated: ``(N, G)`` bool, categories annotated per image.
            weights: ``(B + 1, N)`` float64, row 0 all ones, then the replicates' weights.
        """
        indicators = concept_indicators(labels, len(self.concepts))
        n, c = labels.shape[0], len(self.concepts)
        intersection = torch.zeros(n, self.units, c)
        area = torch.zeros(n, self.units)
        for i in image.unique().tolist():
            rows = image == i
            found = mask_counts(masks[rows], indicators[i])
            intersection[i, unit[rows]], area[i, unit[rows]] = found
        self.add(intersection, area, annotated, weights)

    def count_concepts(self, labels: torch.Tensor, weights: torch.Tensor) -> None:
        """Add one batch's concept pixels (once a batch, whatever the unit chunks)."""
        self.concept_pixels += weights @ _concept_pixels(labels, len(self.concepts))

    def iou(self) -> torch.Tensor:
        """``(B + 1, K, C)`` IoU of each unit with each concept, per replicate (0: the set)."""
        unit = self.unit_pixels[:, :, self.category]  # (B + 1, K, C): the concept's category
        union = unit + self.concept_pixels[:, None, :] - self.intersection
        return torch.where(union > 0, self.intersection / union.clamp(min=1e-12), 0.0)


def concept_indicators(labels: torch.Tensor, concepts: int) -> torch.Tensor:
    """``(N, P, C)`` float32: how many label channels of pixel p carry concept c (0 or 1 when
    a concept has one category), from ``(N, D, P)`` int64 codes."""
    n, _, area = labels.shape
    counts = torch.zeros(n, area, concepts + 1)
    counts.scatter_add_(2, labels.transpose(1, 2), torch.ones(labels.shape).transpose(1, 2))
    return counts[:, :, 1:]


def mask_counts(masks: torch.Tensor, indicators: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(S, C)`` intersections and ``(S,)`` areas of one image's ``(S, P)`` bool masks with
    its ``(P, C)`` concept indicators (exact integers in float32)."""
    dense = masks.float()
    return dense @ indicators, dense.sum(dim=1)


def _concept_pixels(labels: torch.Tensor, concepts: int) -> torch.Tensor:
    """``(N, C)`` float64 pixels of each concept per image."""
    n = labels.shape[0]
    offset = torch.arange(n)[:, None, None] * (concepts + 1)
    counts = torch.bincount((labels + offset).reshape(-1), minlength=n * (concepts + 1))
    return counts.double().view(n, concepts + 1)[:, 1:]
