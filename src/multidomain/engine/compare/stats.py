"""Mean and spread over seeds, and the rule the compare's sentences use (issue 10): a
difference of means exceeds the spread when |difference| > 2 x the pooled standard deviation
over seeds; with one seed a run has no spread, so the answer is "unknown"."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (None with one value) of ``n`` values."""

    mean: float
    std: float | None
    n: int

    def text(self, spec: str = ".1f") -> str:
        if self.std is None:
            return format(self.mean, spec)
        return f"{self.mean:{spec}} ± {self.std:{spec}}"


def summarize(values: list[float]) -> Summary:
    if not values:
        raise ValueError("no values to summarize")
    std = statistics.stdev(values) if len(values) > 1 else None
    return Summary(statistics.fmean(values), std, len(values))


def pooled_std(a: Summary, b: Summary) -> float | None:
    """The pooled standard deviation of two samples; None when either has no spread."""
    if a.std is None or b.std is None:
        return None
    dof = a.n + b.n - 2
    return math.sqrt(((a.n - 1) * a.std**2 + (b.n - 1) * b.std**2) / dof)


@dataclass(frozen=True)
class Difference:
    """``a`` minus ``b``, and whether it exceeds the spread (None: unknown, one seed)."""

    value: float
    pooled: float | None
    exceeds: bool | None

    def verdict(self, spec: str = ".1f") -> str:
        if self.exceeds is None:
            return "the spread is unknown with one seed (run --seeds 3 to tell)"
        bound = f"2 x pooled std = {2 * self.pooled:{spec}}"
        if self.exceeds:
            return f"this exceeds the spread over seeds ({bound})"
        return f"this does not exceed the spread over seeds ({bound})"


def difference(a: Summary, b: Summary) -> Difference:
    """``a.mean - b.mean``, judged by |difference| > 2 x pooled standard deviation."""
    value = a.mean - b.mean
    pooled = pooled_std(a, b)
    exceeds = None if pooled is None else abs(value) > 2 * pooled
    return Difference(value, pooled, exceeds)
