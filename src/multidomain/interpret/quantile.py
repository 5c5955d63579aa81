"""Streamed per-unit top quantile, exact (PAPER.md section 8: P(a_k > T_k) = 0.005).

For ``n`` values of a unit (every spatial position of every probe image), ``m = floor(q * n)``
values lie above the threshold: ``T_k`` is the ``(m + 1)``-th largest value, and a unit's mask is
``a > T_k`` (strict). Tie rule: values equal to ``T_k`` fall outside the mask, so ties at the
threshold make the mask smaller than ``m``, never larger; with no ties it holds exactly ``m``
values. The result is exact (error bound 0, equal to numpy's ``np.sort(a)[-(m + 1)]``): only the
``m + 1`` largest values per unit are kept while streaming, ``4 * (m + 1)`` bytes a unit.
"""

from __future__ import annotations

import math

import torch


def values_above(total: int, quantile: float) -> int:
    """``m``: how many of ``total`` values lie above the threshold of the top ``quantile``."""
    return math.floor(quantile * total + 1e-9)


class TopQuantile:
    """Exact threshold of the top ``quantile`` of each unit's values, fed in chunks.

    Args:
        units: number of units (channels).
        total: how many values each unit will receive in all (known before streaming).
        quantile: fraction of the values above the threshold (0.005 in NetDissect).
    """

    def __init__(self, units: int, total: int, quantile: float = 0.005) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must lie in (0, 1), got {quantile}")
        self.keep = values_above(total, quantile) + 1
        self.total, self.seen = total, 0
        self.top = torch.full((units, 0), -math.inf)

    def update(self, values: torch.Tensor) -> None:
        """Add ``(units, n)`` values (any n)."""
        self.seen += values.shape[1]
        if self.seen > self.total:
            raise ValueError(f"received {self.seen} values per unit, more than the {self.total}")
        merged = torch.cat([self.top, values.float()], dim=1)
        k = min(self.keep, merged.shape[1])
        self.top = torch.topk(merged, k, dim=1, sorted=False).values

    def thresholds(self) -> torch.Tensor:
        """``(units,)`` thresholds ``T_k``; every value was received."""
        if self.seen != self.total:
            raise ValueError(f"received {self.seen} values per unit of the {self.total} announced")
        return self.top.min(dim=1).values
