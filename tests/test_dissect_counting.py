"""The fast mask counting of network dissection (issue 14's speed target) against a slow,
obviously correct reference: one map at a time through ``F.interpolate``, one concept at a time
through numpy, IoU from its definition (PAPER.md section 8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multidomain.interpret.counting import IoUCounter, concept_indicators
from multidomain.interpret.masks import layer_counts
from multidomain.interpret.probe import Concepts
from multidomain.interpret.quantile import TopQuantile, values_above

CONCEPTS = Concepts(("red", "blue", "car", "dog"), ("colour", "colour", "object", "object"),
                    ("colour", "object"))  # fmt: skip
SIZE = (12, 12)


def _reference(acts, limit, labels, annotated, weights):
    """``(B + 1, K, C)`` IoU, map by map and concept by concept, in float64 numpy."""
    n, k = acts.shape[:2]
    c = len(CONCEPTS)
    category = CONCEPTS.category_index()
    inter = np.zeros((len(weights), k, c))
    unit_px = np.zeros((len(weights), k, c))
    concept_px = np.zeros((len(weights), c))
    for i in range(n):
        codes = labels[i].numpy()  # (D, P)
        for j in range(c):
            concept_px[:, j] += weights[:, i] * (codes == j + 1).sum()
        for u in range(k):
            up = F.interpolate(acts[i, u][None, None], size=SIZE, mode="bilinear")
            mask = (up[0, 0] > limit[u]).flatten().numpy()
            for j in range(c):
                inter[:, u, j] += weights[:, i] * (mask & (codes == j + 1)).sum()
                unit_px[:, u, j] += weights[:, i] * mask.sum() * annotated[i, category[j]]
    union = unit_px + concept_px[:, None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0), inter


def _batch(map_size, seed, n=5, k=7):
    g = torch.Generator().manual_seed(seed)
    acts = torch.randn(n, k, *map_size, generator=g).round(decimals=1)  # many ties
    # each unit's threshold is one of its own values: pixels equal to it must stay out
    limit = acts.transpose(0, 1).reshape(k, -1).quantile(0.9, dim=1, interpolation="lower")
    labels = torch.randint(0, 3, (n, 2, SIZE[0] * SIZE[1]), generator=g)
    labels[:, 1] = torch.where(labels[:, 1] > 0, labels[:, 1] + 2, 0)  # object codes 3, 4
    annotated = torch.rand(n, 2, generator=g) > 0.3
    weights = torch.cat([torch.ones(1, n), torch.poisson(torch.ones(2, n), generator=g)])
    return acts, limit, labels, annotated, weights.double()


@pytest.mark.parametrize("map_size", [(3, 3), (5, 4), (6, 6), (12, 12), (24, 24)])
@pytest.mark.parametrize("chunk", [4, 2048])
def test_the_fast_counts_equal_a_map_by_map_reference(map_size, chunk):
    """Upsampled by 4, by 2.4 and 3 (non-dyadic weights), by 2, not at all, and downsampled;
    chunks smaller than a layer and a batch; two replicates with Poisson weights."""
    acts, limit, labels, annotated, weights = _batch(map_size, seed=sum(map_size))
    counter = IoUCounter(acts.shape[1], CONCEPTS, replicates=2)
    indicators = concept_indicators(labels, len(CONCEPTS))
    peaks = acts.amax(dim=(2, 3))
    intersection, area = layer_counts(acts, peaks, limit, SIZE, indicators, chunk)
    counter.add(intersection, area, annotated, weights)
    counter.count_concepts(labels, weights)
    expected_iou, expected_inter = _reference(
        acts, limit, labels, annotated.numpy(), weights.numpy()
    )
    np.testing.assert_array_equal(counter.intersection.numpy(), expected_inter)
    np.testing.assert_allclose(counter.iou().numpy(), expected_iou, rtol=0, atol=1e-12)
    assert expected_inter[0].sum() > 0  # some masks are not empty


def test_a_value_a_rounding_away_from_the_threshold_is_decided_as_f_interpolate_does():
    """Maps built so that the upsampled values sit at or next to the threshold."""
    base = torch.tensor([[1.0, 1.0 + 2**-20], [1.0 - 2**-22, 1.0]])
    acts = base.expand(1, 3, 2, 2).clone() * torch.tensor([1.0, 3.3, 0.7])[None, :, None, None]
    limit = torch.tensor([1.0, 3.3, 0.7]) * (1 + 2**-23)
    labels = torch.ones(1, 1, SIZE[0] * SIZE[1], dtype=torch.int64)
    indicators = concept_indicators(labels, len(CONCEPTS))
    _, area = layer_counts(acts, acts.amax(dim=(2, 3)), limit, SIZE, indicators)
    up = F.interpolate(acts, size=SIZE, mode="bilinear")
    expected = (up > limit[None, :, None, None]).flatten(2).sum(dim=2).float()
    torch.testing.assert_close(area, expected, rtol=0, atol=0)


@pytest.mark.parametrize("chunks", [3, 40])
def test_the_streamed_quantile_with_ties_and_many_chunks_is_numpys(chunks):
    rng = np.random.default_rng(chunks)
    data = rng.integers(0, 50, (4, 20000)).astype(np.float32)  # every value repeated
    quantile = TopQuantile(4, 20000, 0.005)
    for part in np.array_split(np.arange(20000), chunks):
        quantile.update(torch.from_numpy(data[:, part]))
    m = values_above(20000, 0.005)
    np.testing.assert_array_equal(quantile.thresholds().numpy(), np.sort(data, 1)[:, -(m + 1)])
