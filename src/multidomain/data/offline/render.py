"""Drawing jittered glyphs: shared by the Hershey characters and the printed letters."""

from __future__ import annotations

import math

import numpy as np

Segment = tuple[tuple[float, float], tuple[float, float]]


def random_affine(rng: np.random.Generator, max_degrees: float, scale: tuple[float, float]):
    """A random rotation + scale + shear as a 2x2 matrix (for points with y pointing down)."""
    angle = math.radians(rng.uniform(-max_degrees, max_degrees))
    shear = rng.uniform(-0.2, 0.2)
    factor = rng.uniform(*scale)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return factor * rotation @ np.array([[1.0, shear], [0.0, 1.0]])


def fit_segments(
    segments: list[Segment], size: int, matrix: np.ndarray, shift: np.ndarray
) -> list[tuple[float, float, float, float]]:
    """Center segments on a ``size`` canvas, scale the glyph to 60% of it, then jitter.

    Returns flat ``(x1, y1, x2, y2)`` tuples in canvas pixels.
    """
    points = np.array([p for seg in segments for p in seg], dtype=np.float64)  # (2K, 2)
    low, high = points.min(axis=0), points.max(axis=0)
    extent = max(float((high - low).max()), 1.0)
    centred = (points - (low + high) / 2.0) * (0.6 * size / extent)
    moved = centred @ matrix.T + size / 2.0 + shift
    return [tuple(moved[i].tolist() + moved[i + 1].tolist()) for i in range(0, len(moved), 2)]
