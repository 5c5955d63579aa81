"""The dissection report: ``dissect.md``, ``dissect.csv`` and plots (bars per layer, a grid
of the best units' top-activating probe images with their masks)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from multidomain.interpret.dissect import Dissection, LayerResult
from multidomain.interpret.summary import GroupStats, answer, layer_table, type_table
from multidomain.io import atomic_path

CSV_FIELDS = ("variant", "layer", "kind", "unit", "concept", "category", "iou", "detector")


def write_csv(result: Dissection, path: Path) -> None:
    """One row per (variant, layer, unit): its best concept, IoU and whether it detects it."""
    concepts = result.concepts
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for variant, layers in result.variants.items():
        for layer in layers:
            best = layer.iou[0].argmax(axis=1)
            for unit, concept in enumerate(best.tolist()):
                iou = float(layer.iou[0, unit, concept])
                detector = iou > result.options.iou_threshold
                name, category = concepts.names[concept], concepts.categories[concept]
                writer.writerow(
                    (
                        variant,
                        layer.name,
                        layer.kind,
                        unit,
                        name,
                        category,
                        f"{iou:.5f}",
                        int(detector),
                    )
                )
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def _row(stats: GroupStats, variant: str) -> str:
    cats = ", ".join(f"{c} {n}" for c, n in stats.categories.items() if n) or "-"
    return (
        f"| {variant} | {stats.name} | {stats.kind} | {stats.units} | {stats.detectors_per_100} "
        f"| {stats.unique_concepts} | {stats.unique_per_100} | {stats.mean_level.value:.2f} "
        f"| {cats} |"
    )


_HEADER = (
    "| network | layer | type | units | detectors / 100 units | unique concepts "
    "| unique / 100 units | mean level | detectors by category |\n" + "|---" * 9 + "|"
)


def _coverage_lines(result: Dissection) -> list[str]:
    concepts = result.concepts
    items = [
        f"{n} ({c}) {100 * v:.2f}%"
        for n, c, v in zip(concepts.names, concepts.categories, result.coverage, strict=True)
    ]
    return [
        "Concept coverage (share of the annotated pixels of the concept's category; with a "
        f"top-{100 * result.options.quantile:g}% threshold a concept covering more than about "
        f"{100 * result.options.quantile / result.options.iou_threshold:.1f}% can never pass "
        f"IoU {result.options.iou_threshold:g}): " + "; ".join(items) + ".",
    ]


def markdown(result: Dissection) -> str:
    """The report's text."""
    opts, concepts = result.options, result.concepts
    types = {  # per variant: the statistics of each layer type, for the answer and the table
        variant: type_table(layers, concepts, opts.iou_threshold)
        for variant, layers in result.variants.items()
    }
    controls = {variant: stats for variant, stats in types.items() if variant != "trained"}
    lines = [
        f"# Network dissection, domain `{result.domain}`",
        "",
        f"Probe: {result.probe}. {len(concepts)} concepts in categories "
        f"{', '.join(concepts.category_names)} (level 0 to {len(concepts.category_names) - 1}); "
        "Broden has 1,197, so compare layers only with each other and with the controls, "
        "not with published counts.",
        "",
        f"Method (PAPER.md section 8): per unit the top-{100 * opts.quantile:g}% threshold over "
        "every position of every probe image (exact), bilinear upsampling to the mask size, IoU "
        "with the union restricted to images where the concept's category is annotated, a "
        f"detector when IoU > {opts.iou_threshold:g}. Depthwise and pointwise outputs are both "
        "read before any norm. Spreads: ± bootstrap standard deviation over probe images "
        f"({opts.replicates} Poisson replicates, seed {opts.seed}).",
        "",
        f"**Answer.** {answer(types['trained'], controls)}",
        "",
        "## Per layer type",
        "",
        _HEADER,
    ]
    for variant, stats in types.items():
        lines += [_row(s, variant) for s in stats]
    lines += ["", "## Per layer", "", _HEADER]
    for variant, layers in result.variants.items():
        lines += [_row(s, variant) for s in layer_table(layers, concepts, opts.iou_threshold)]
    lines += ["", *_coverage_lines(result), "", "![detectors](detectors.png)", ""]
    lines += ["![best units](best_units.png)", ""]
    return "\n".join(lines)


def plot_detectors(result: Dissection, path: Path) -> None:
    """Detectors per 100 units of every layer, coloured by type, one panel per network."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    variants = list(result.variants)
    fig, axes = plt.subplots(len(variants), 1, figsize=(12, 3 * len(variants)), squeeze=False)
    for ax, variant in zip(axes[:, 0], variants, strict=True):
        stats = layer_table(result.variants[variant], result.concepts, result.options.iou_threshold)
        values = [s.detectors_per_100.value for s in stats]
        errors = [s.detectors_per_100.sd for s in stats]
        colours = ["tab:orange" if s.kind == "depthwise" else "tab:blue" for s in stats]
        ax.bar(range(len(stats)), values, yerr=errors, color=colours)
        ax.set_xticks(range(len(stats)), [s.name for s in stats], rotation=90, fontsize=6)
        ax.set_ylabel("detectors / 100 units")
        ax.set_title(f"{variant} (orange: depthwise, blue: pointwise)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def best_units(layers: list[LayerResult], count: int) -> list[tuple[LayerResult, int, int]]:
    """The ``count`` (layer, unit, concept) of highest IoU, best first."""
    scored = []
    for layer in layers:
        best = layer.iou[0].argmax(axis=1)
        for unit, concept in enumerate(best.tolist()):
            scored.append((float(layer.iou[0, unit, concept]), layer, unit, concept))
    scored.sort(key=lambda item: -item[0])
    return [(layer, unit, concept) for _, layer, unit, concept in scored[:count]]


def unit_masks(model, domain, probe, inputs, layer: LayerResult, unit: int, view=None):
    """``(images (t, H, W, 3) uint8, masks (t, H, W) bool)`` of a unit's top images."""
    from multidomain.interpret.layers import find_layers, watching

    batch = probe.batch(layer.top_images[unit])
    ref = next(r for r in find_layers(model) if r.name == layer.name)
    seen = []
    with watching([ref], lambda _r, out: seen.append(out.float())), torch.inference_mode():
        model(inputs(batch.images), domain=domain)
    maps = seen[0][:, unit : unit + 1]
    up = F.interpolate(maps, size=batch.images.shape[1:3], mode="bilinear")[:, 0]
    return batch.images, (up > float(layer.thresholds[unit])).numpy()


def plot_best_units(result, model, probe, inputs, path: Path, count: int = 8) -> None:
    """A grid: one row per best unit of the trained network, its top images with the mask."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    chosen = best_units(result.variants["trained"], count)
    columns = result.options.top_images
    fig, axes = plt.subplots(
        len(chosen), columns, figsize=(1.6 * columns, 1.8 * len(chosen)), squeeze=False
    )
    for row, (layer, unit, concept) in enumerate(chosen):
        images, masks = unit_masks(model, result.domain, probe, inputs, layer, unit)
        for col in range(columns):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(images):
                shown = images[col].astype(np.float64) / 255
                shown[~masks[col]] *= 0.35  # darken outside the unit's mask
                ax.imshow(shown)
        iou = layer.iou[0, unit, concept]
        axes[row, 0].set_title(
            f"{layer.name} #{unit}: {result.concepts.names[concept]} ({iou:.2f})",
            fontsize=7,
            loc="left",
        )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_report(result: Dissection, out: Path, model=None, probe=None, inputs=None) -> list[Path]:
    """Write ``dissect.md``, ``dissect.csv``, ``detectors.png`` (and ``best_units.png`` when
    the model and probe are given) into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "dissect.md", out / "dissect.csv", out / "detectors.png"]
    with atomic_path(written[0]) as tmp:
        tmp.write_text(markdown(result))
    write_csv(result, written[1])
    plot_detectors(result, written[2])
    if model is not None and probe is not None:
        written.append(out / "best_units.png")
        plot_best_units(result, model, probe, inputs, written[-1])
    return written
