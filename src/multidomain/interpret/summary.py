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


def answer(types: list[GroupStats], controls: dict[str, list[GroupStats]] | None = None) -> str:
    """The paper's RQ4 answered with the numbers: whether depthwise layers hold more concepts
    per unit, and higher-level ones, than pointwise layers, each difference judged against
    twice its bootstrap spread; with ``controls`` (variant -> per-type stats), what the same
    measures read there, so signal can be told from chance."""
    by_kind = {t.kind: t for t in types}
    if set(by_kind) != {"depthwise", "pointwise"}:
        return "Only one layer type was dissected: the question needs both."
    dw, pw = by_kind["depthwise"], by_kind["pointwise"]
    more = _compare(dw.unique_per_100, pw.unique_per_100, "more", "fewer")
    higher = _compare(dw.mean_level, pw.mean_level, "higher", "lower")
    text = (
        f"Depthwise layers hold {dw.unique_per_100.value:.2f} ± {dw.unique_per_100.sd:.2f} unique "
        f"concepts per 100 units ({dw.detectors_per_100} detectors per 100 units, mean concept "
        f"level {dw.mean_level.value:.2f} ± {dw.mean_level.sd:.2f}) against "
        f"{pw.unique_per_100.value:.2f} ± {pw.unique_per_100.sd:.2f} for pointwise layers "
        f"({pw.detectors_per_100} detectors per 100 units, level {pw.mean_level.value:.2f} ± "
        f"{pw.mean_level.sd:.2f}). Concepts per unit: {more}. Concept level: {higher}."
    )
    for variant, stats in (controls or {}).items():
        text += " " + _control_sentence(variant, stats, dw, pw)
    return text


def _compare(dw: Spread, pw: Spread, above: str, below: str) -> str:
    """Whether depthwise is ``above``/``below`` pointwise beyond 2 x the pooled spread."""
    difference = dw.value - pw.value
    bound = 2.0 * float(np.hypot(dw.sd, pw.sd))
    if np.isnan(difference):
        return "not measurable (a layer type has no detector)"
    verdict = (above if difference > 0 else below) if abs(difference) > bound else "no difference"
    detail = f"difference {difference:+.2f}, 2 x spread {bound:.2f}"
    if verdict == "no difference":
        return f"no difference beyond the spread ({detail})"
    return f"depthwise {verdict} ({detail})"


def _control_sentence(variant: str, stats: list[GroupStats], dw: GroupStats, pw: GroupStats):
    by_kind = {t.kind: t for t in stats}
    if set(by_kind) != {"depthwise", "pointwise"}:
        return ""
    cdw, cpw = by_kind["depthwise"], by_kind["pointwise"]
    return (
        f"Control {variant}: {cdw.unique_per_100.value:.2f} (depthwise) and "
        f"{cpw.unique_per_100.value:.2f} (pointwise) unique concepts per 100 units, levels "
        f"{cdw.mean_level.value:.2f} and {cpw.mean_level.value:.2f}, against the trained "
        f"network's {dw.unique_per_100.value:.2f} and {pw.unique_per_100.value:.2f}, levels "
        f"{dw.mean_level.value:.2f} and {pw.mean_level.value:.2f}."
    )
