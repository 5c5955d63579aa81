"""The dissection's two passes as they were before the speed-up (issue 14), kept only so that
``bench_dissect.py`` can time it against the current one on the same images and check that
both give the same counts. Not used by the library.

Thresholds: each batch, ``topk`` re-selects the ``keep`` largest of ``keep + n`` values per
unit. Counting: per (image, unit) pair whose map peak passes the threshold, upsample the map
alone, threshold it, take the masked pixels with ``nonzero``, gather their labels and
``bincount`` them, then ``index_add_`` the counts, weighted, into the counters.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from multidomain.interpret.bootstrap import poisson_weights
from multidomain.interpret.dissect import _Counting, _forward, _identity
from multidomain.interpret.layers import watching
from multidomain.interpret.quantile import values_above


def update_before(counter, image, unit, masks, labels, annotated, weights) -> None:
    """The former ``IoUCounter.update``: sparse masks ``(S, P)`` of pairs ``(image, unit)``."""
    row, pixel = masks.nonzero(as_tuple=True)
    inter = _intersections(image, row, pixel, masks.shape[0], labels, len(counter.concepts))
    area = torch.bincount(row, minlength=masks.shape[0]).double()
    pixels = area[:, None] * annotated[image]  # (S, G)
    w = weights[:, image]  # (B + 1, S)
    counter.intersection.index_add_(1, unit, w[:, :, None] * inter[None])
    counter.unit_pixels.index_add_(1, unit, w[:, :, None] * pixels[None])


def _intersections(image, row, pixel, count: int, labels: torch.Tensor, concepts: int):
    _, depth, area = labels.shape
    where = (image[row] * depth)[None, :] + torch.arange(depth)[:, None]  # (D, M)
    codes = labels.reshape(-1)[(where * area + pixel[None, :]).reshape(-1)]
    slots = (row * (concepts + 1)).repeat(depth) + codes
    counts = torch.bincount(slots, minlength=count * (concepts + 1)).double()
    return counts.view(count, concepts + 1)[:, 1:]


def count_layers_before(model, domain, probe, refs, thresholds, inputs, options, view=_identity):
    """``{layer name: _Counting}`` after the second pass, the former way."""
    states: dict[str, _Counting] = {}
    current: dict[str, torch.Tensor] = {}

    def sink(ref, output: torch.Tensor) -> None:
        a = view(ref, output)  # (N, K, h, w)
        state = states.setdefault(ref.name, _Counting(a.shape[1], probe, options))
        state.add_top(a.amax(dim=(2, 3)), current["indices"])
        state.counter.count_concepts(current["labels"], current["weights"])
        limit = thresholds[ref.name]
        image, unit = (a.amax(dim=(2, 3)) > limit).nonzero(as_tuple=True)
        for start in range(0, len(image), 128):
            rows = slice(start, start + 128)
            maps = a[image[rows], unit[rows]][:, None]  # (s, 1, h, w)
            up = F.interpolate(maps, size=probe.mask_size, mode="bilinear")
            masks = (up[:, 0] > limit[unit[rows], None, None]).flatten(1)  # (s, P)
            update_before(
                state.counter,
                image[rows],
                unit[rows],
                masks,
                current["labels"],
                current["annotated"],
                current["weights"],
            )

    with watching(refs, sink):
        for batch in probe.batches(options.batch_size):
            weights = poisson_weights(batch.indices, options.replicates, options.seed)
            current.update(
                indices=torch.from_numpy(batch.indices)[None, :],
                labels=torch.from_numpy(batch.labels.astype(np.int64)).flatten(2),
                annotated=torch.from_numpy(batch.annotated),
                weights=torch.from_numpy(
                    np.concatenate([np.ones((1, len(batch.indices))), weights])
                ),
            )
            _forward(model, domain, inputs, batch)
    return states


class TopQuantileBefore:
    """The former streamed threshold: re-selects ``keep`` of ``keep + n`` values each batch."""

    def __init__(self, units: int, total: int, quantile: float = 0.005) -> None:
        self.keep = values_above(total, quantile) + 1
        self.top = torch.full((units, 0), -math.inf)

    def update(self, values: torch.Tensor) -> None:
        merged = torch.cat([self.top, values.float()], dim=1)
        self.top = torch.topk(merged, min(self.keep, merged.shape[1]), dim=1, sorted=False).values

    def thresholds(self) -> torch.Tensor:
        return self.top.min(dim=1).values


def layer_thresholds_before(model, domain, probe, refs, inputs, options, view=_identity):
    """``{layer name: (K,) thresholds}``, the former way."""
    trackers: dict[str, TopQuantileBefore] = {}

    def sink(ref, output: torch.Tensor) -> None:
        a = view(ref, output)  # (N, K, h, w)
        n, k, h, w = a.shape
        if ref.name not in trackers:
            trackers[ref.name] = TopQuantileBefore(k, len(probe) * h * w, options.quantile)
        trackers[ref.name].update(a.transpose(0, 1).reshape(k, n * h * w))

    with watching(refs, sink):
        for batch in probe.batches(options.batch_size):
            _forward(model, domain, inputs, batch)
    return {name: tracker.thresholds() for name, tracker in trackers.items()}
