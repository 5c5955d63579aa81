"""A layer's unit masks for one batch, counted against the concepts (PAPER.md section 8).

Unit k's mask in image n is its activation map upsampled (bilinear) to the mask size and
thresholded, ``up(a_nk) > T_k``, exactly as ``F.interpolate(..., mode="bilinear") > T_k``
decides it. Three shortcuts keep that result and make it cheap:

- A bilinear value is a convex combination of (at most) four map values, so a map whose peak is
  not above ``T_k`` gives an empty mask, up to float32 rounding: ``F.interpolate`` can put a
  value an ulp above the largest of its sources (1.1 and 1.1 giving 1.1000001). Only the
  (image, unit) pairs whose peak is above ``T_k`` less the margin below are upsampled (the
  code before this one required the peak above ``T_k`` and so missed such pixels, very rarely:
  the only way its counts and these differ). A map already at the mask size is its own
  upsampling (weights 1 and 0, exact).
- Upsampling is separable: ``rows @ map @ cols.T`` with PyTorch's own weights (read off
  ``F.interpolate`` applied to an identity matrix) is several times faster than
  ``F.interpolate`` on small maps. It may differ from it by rounding only (a few float32 ulps of
  the map's largest magnitude), so every pixel whose fast value lies within a margin far above
  that bound of ``T_k`` is decided by ``F.interpolate`` itself (a handful of maps a layer).
- The counts of one image are a product of binary matrices, its masks ``(S, P)`` @ its concept
  indicators ``(P, C)`` with a column of ones for the mask's area (exact integers in float32,
  see :mod:`counting`), for all its passing units at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Both ways of upsampling round each of their few operations to float32 (relative error 2**-24
# of the largest magnitude involved, which is at most the map's largest |value|): pixels whose
# fast value is within this fraction of it from the threshold are decided the slow, exact way.
UNSURE = 1e-5


def _weights(source: int, target: int) -> torch.Tensor:
    """``(target, source)`` bilinear weights along one axis, as ``F.interpolate`` uses them."""
    eye = torch.eye(source)[None, None]  # (1, 1, source, source): column j is source row j
    return F.interpolate(eye, size=(target, source), mode="bilinear")[0, 0]


class Upsampler:
    """Bilinear upsampling of ``(S, h, w)`` maps to ``size``, thresholded into masks."""

    def __init__(self, source: tuple[int, int], size: tuple[int, int]) -> None:
        self.source, self.size = tuple(source), tuple(size)
        self.separable = all(t > s for s, t in zip(self.source, self.size, strict=True))
        if self.separable:
            self.rows = _weights(self.source[0], self.size[0])  # (Hm, h)
            self.cols = _weights(self.source[1], self.size[1]).T.contiguous()  # (w, Wm)

    def exact(self, maps: torch.Tensor) -> torch.Tensor:
        """``(S, Hm, Wm)``: ``F.interpolate``'s values."""
        if self.source == self.size:
            return maps  # weights 1 and 0: the map itself, exactly
        return F.interpolate(maps[:, None], size=self.size, mode="bilinear")[:, 0]

    def fast(self, maps: torch.Tensor) -> torch.Tensor:
        """``(S, Hm, Wm)``: the separable product, as two large matrix products."""
        s, h, w = maps.shape
        tall = maps.transpose(1, 2).reshape(s * w, h) @ self.rows.T  # (S * w, Hm)
        wide = tall.view(s, w, -1).transpose(1, 2).reshape(-1, w) @ self.cols  # (S * Hm, Wm)
        return wide.view(s, *self.size)

    def masks(self, maps: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
        """``(S, P)`` bool masks ``up(map) > limit`` of ``(S, h, w)`` maps, ``(S,)`` limits."""
        limits = limits[:, None, None]
        if not self.separable:
            return (self.exact(maps) > limits).flatten(1)
        fast = self.fast(maps)
        margin = UNSURE * maps.abs().amax(dim=(1, 2))[:, None, None]
        masks = fast > limits
        unsure = (masks != (fast > limits + margin)) | (masks != (fast > limits - margin))
        unsure = unsure.flatten(1).any(dim=1)  # (S,)
        if unsure.any():
            masks[unsure] = self.exact(maps[unsure]) > limits[unsure]
        return masks.flatten(1)


def layer_counts(
    activation: torch.Tensor,
    peaks: torch.Tensor,
    limit: torch.Tensor,
    size: tuple[int, int],
    indicators: torch.Tensor,
    chunk: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask counts of every unit of a layer in every image of a batch.

    Args:
        activation: ``(N, K, h, w)`` float maps.
        peaks: ``(N, K)`` their maxima.
        limit: ``(K,)`` thresholds.
        size: the mask size ``(Hm, Wm)``; P = Hm * Wm.
        indicators: ``(N, P, C)`` concept indicators of the batch.
        chunk: most maps upsampled at once (bounds memory at ``chunk * P`` floats a few times).

    Returns:
        ``(N, K, C)`` intersections and ``(N, K)`` areas, float32 (exact integers).
    """
    n, k, h, w = activation.shape
    upsampler = Upsampler((h, w), size)
    counts = torch.zeros(n, k, indicators.shape[2] + 1)  # the concepts, then the area
    with_area = torch.cat([indicators, torch.ones(*indicators.shape[:2], 1)], dim=2)
    scale = torch.maximum(peaks.abs(), activation.amin(dim=(2, 3)).abs())  # (N, K) max |a|
    passing = peaks > limit - UNSURE * scale
    image, unit = passing.nonzero(as_tuple=True)  # sorted by image
    for start in range(0, len(image), chunk):
        images, units = image[start : start + chunk], unit[start : start + chunk]
        masks = upsampler.masks(activation[images, units], limit[units]).float()  # (S, P)
        found = torch.cat(
            [part @ with_area[i] for i, part in _by_image(images, masks)]
        )  # (S, C + 1)
        counts[images, units] = found
    return counts[:, :, :-1], counts[:, :, -1]


def _by_image(images: torch.Tensor, rows: torch.Tensor):
    """``(image, its rows)`` for rows sorted by image."""
    values, sizes = torch.unique_consecutive(images, return_counts=True)
    return zip(values.tolist(), rows.split(sizes.tolist()), strict=True)
