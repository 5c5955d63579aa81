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

    Once ``keep`` values are held, their smallest (the floor) can only rise, and a value not
    above it cannot be among the ``keep`` largest (as a multiset): only the values above the
    floor are appended, and the held values are cut back to the ``keep`` largest (raising the
    floor) when they reach twice ``keep``, a few times over a stream instead of every batch.

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
        self.top = torch.full((units, 0), -math.inf)  # (units, >= keep once full): -inf pads
        self.floor: torch.Tensor | None = None  # (units,) once keep values are held

    def update(self, values: torch.Tensor) -> None:
        """Add ``(units, n)`` values (any n)."""
        self.seen += values.shape[1]
        if self.seen > self.total:
            raise ValueError(f"received {self.seen} values per unit, more than the {self.total}")
        if self.floor is not None:
            values = _above(values, self.floor)
        self.top = torch.cat([self.top, values.float()], dim=1)
        full = self.top.shape[1] >= self.keep
        if (self.floor is None and full) or self.top.shape[1] > 2 * self.keep:
            self._cut()

    def _cut(self) -> None:
        k = min(self.keep, self.top.shape[1])
        self.top = torch.topk(self.top, k, dim=1, sorted=False).values
        self.floor = self.top.min(dim=1).values if k == self.keep else None

    def thresholds(self) -> torch.Tensor:
        """``(units,)`` thresholds ``T_k``; every value was received."""
        if self.seen != self.total:
            raise ValueError(f"received {self.seen} values per unit of the {self.total} announced")
        self._cut()
        return self.top.min(dim=1).values


def _above(values: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """``(units, m)``: each unit's values above its ``floor``, padded with ``-inf``."""
    unit, where = (values > floor[:, None]).nonzero(as_tuple=True)  # sorted by unit
    counts = torch.bincount(unit, minlength=values.shape[0])
    start = torch.cumsum(counts, 0) - counts  # (units,) first position of each unit
    slot = torch.arange(len(unit)) - start[unit]
    kept = torch.full((values.shape[0], int(counts.max())), -math.inf)
    kept[unit, slot] = values[unit, where].float()
    return kept
