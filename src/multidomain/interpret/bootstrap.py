"""Streaming bootstrap over probe images (Poisson weights, one counter per replicate).

Per-image counts for every unit and concept would not fit in memory, so each image gets, for
each of ``B`` replicates, a Poisson(1) weight (an online approximation of resampling the images
with replacement) and every counter is kept once per replicate. An image's weights depend only on
``(seed, image index)``, so the replicates do not depend on the batch size or order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def poisson_weights(indices: np.ndarray, replicates: int, seed: int) -> np.ndarray:
    """``(replicates, N)`` float64 Poisson(1) weights of the images ``indices``."""
    columns = [
        np.random.default_rng([seed, 0xB007, int(i)]).poisson(1.0, replicates) for i in indices
    ]
    return np.stack(columns, axis=1).astype(np.float64).reshape(replicates, len(indices))


@dataclass(frozen=True)
class Spread:
    """A statistic on the whole probe set and its bootstrap spread."""

    value: float
    sd: float
    low: float  # 2.5th percentile of the replicates
    high: float  # 97.5th percentile

    @classmethod
    def of(cls, value: float, replicates: np.ndarray) -> Spread:
        if replicates.size == 0:
            return cls(float(value), 0.0, float(value), float(value))
        low, high = np.percentile(replicates, [2.5, 97.5])
        return cls(
            float(value),
            float(replicates.std(ddof=1) if replicates.size > 1 else 0.0),
            float(low),
            float(high),
        )

    def __str__(self) -> str:
        return f"{self.value:.3g} ± {self.sd:.2g}"
