"""Per-layer and per-type statistics of a dissection, with bootstrap spreads.

A unit is a detector of its best concept when that IoU exceeds the threshold. Counts are
normalised per unit (detectors per 100 units, unique concepts per 100 units), since depthwise
and pointwise layers have different numbers of units; the level of a concept is its category's
position in the probe's category order (colour lowest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multidomain.interpret.bootstrap import Spread
from multidomain.interpret.dissect import LayerResult
from multidomain.interpret.probe import Concepts


@dataclass(frozen=True)
class GroupStats:
    """Statistics of a group of units (one layer, or every layer of one type)."""

    name: str
    kind: str
    units: int
    detectors_per_100: Spread
    unique_concepts: Spread
    unique_per_100: Spread
    mean_level: Spread  # mean category level of the detectors' concepts (nan: none)
    categories: dict[str, int]  # detectors per category (probe set)


def _detections(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(R, K)`` best concept and whether it is detected, per replicate and unit."""
    return iou.argmax(axis=2), iou.max(axis=2) > threshold


def group_stats(
    name: str, kind: str, layers: list[LayerResult], concepts: Concepts, threshold: float
) -> GroupStats:
    """Statistics of the units of ``layers`` together (rows: probe set, then replicates)."""
    iou = np.concatenate([layer.iou for layer in layers], axis=1)  # (R, K, C)
    best, detected = _detections(iou, threshold)
    level = concepts.category_index()
    units = iou.shape[1]
    per_100 = detected.sum(axis=1) * 100.0 / units
    unique = np.array([len(set(b[d].tolist())) for b, d in zip(best, detected, strict=True)])
    levels = np.array(
        [level[b[d]].mean() if d.any() else np.nan for b, d in zip(best, detected, strict=True)]
    )
    counts = np.bincount(level[best[0][detected[0]]], minlength=len(concepts.category_names))
    return GroupStats(
        name=name,
        kind=kind,
        units=units,
        detectors_per_100=Spread.of(per_100[0], per_100[1:]),
        unique_concepts=Spread.of(unique[0], unique[1:]),
        unique_per_100=Spread.of(unique[0] * 100.0 / units, unique[1:] * 100.0 / units),
        mean_level=Spread.of(levels[0], levels[1:][~np.isnan(levels[1:])]),
        categories=dict(zip(concepts.category_names, counts.tolist(), strict=True)),
    )


def layer_table(layers: list[LayerResult], concepts: Concepts, threshold: float):
    """One :class:`GroupStats` per layer."""
    return [group_stats(r.name, r.kind, [r], concepts, threshold) for r in layers]


def type_table(layers: list[LayerResult], concepts: Concepts, threshold: float):
    """One :class:`GroupStats` per layer type present (depthwise, pointwise)."""
    kinds = [k for k in ("depthwise", "pointwise") if any(r.kind == k for r in layers)]
    return [
        group_stats(k, k, [r for r in layers if r.kind == k], concepts, threshold) for k in kinds
    ]


def answer(types: list[GroupStats]) -> str:
    """The paper's RQ4 answered in one sentence with the numbers."""
    by_kind = {t.kind: t for t in types}
    if set(by_kind) != {"depthwise", "pointwise"}:
        return "Only one layer type was dissected: the question needs both."
    dw, pw = by_kind["depthwise"], by_kind["pointwise"]
    more = dw.unique_per_100.value > pw.unique_per_100.value
    higher = dw.mean_level.value > pw.mean_level.value
    return (
        f"Depthwise layers hold {dw.unique_per_100.value:.2f} ± {dw.unique_per_100.sd:.2f} unique "
        f"concepts per 100 units ({dw.detectors_per_100} detectors per 100 units, mean concept "
        f"level {dw.mean_level.value:.2f}) against {pw.unique_per_100.value:.2f} ± "
        f"{pw.unique_per_100.sd:.2f} for pointwise layers ({pw.detectors_per_100} detectors per "
        f"100 units, level {pw.mean_level.value:.2f}): depthwise layers hold "
        f"{'more' if more else 'not more'} concepts per unit, and "
        f"{'higher' if higher else 'not higher'}-level ones, than pointwise layers."
    )
