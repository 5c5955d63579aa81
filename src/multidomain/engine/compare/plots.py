"""The compare's plots: score (or mean top-1) against #par, the paper's trade-off, and
per-domain test accuracy of every row, with the spread over seeds as error bars."""

from __future__ import annotations

from pathlib import Path

from multidomain.engine.compare.questions import measure, value
from multidomain.engine.compare.results import Results
from multidomain.engine.report import _pyplot


def plot_tradeoff(results: Results, path: Path) -> None:
    plt = _pyplot()
    name, unit = measure(results)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row, result in results.rows.items():
        summary = value(result, results)
        ax.errorbar(result.relative_params, summary.mean, yerr=summary.std or 0, fmt="o", capsize=3)
        ax.annotate(row, (result.relative_params, summary.mean), textcoords="offset points",
                    xytext=(5, 4), fontsize="small")  # fmt: skip
    ax.set_xscale("log")
    ax.set(xlabel="#par (x one ResNet-26, heads excluded)", ylabel=f"{name} {unit}".strip(),
           title=f"{name} against parameters (mean ± std over seeds)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_domains(results: Results, path: Path) -> None:
    plt = _pyplot()
    rows = list(results.rows.values())
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(8, 1.4 * len(results.domains)), 4.5))
    for i, result in enumerate(rows):
        xs = [d + (i - (len(rows) - 1) / 2) * width for d in range(len(results.domains))]
        summaries = [result.domain(d) for d in results.domains]
        ax.bar(xs, [s.mean for s in summaries], width=width, label=result.row.name,
               yerr=[s.std or 0 for s in summaries], capsize=2)  # fmt: skip
    ax.set_xticks(range(len(results.domains)), results.domains, rotation=30, ha="right")
    ax.set(ylabel="test top-1 %", ylim=(0, 100), title="Per-domain test accuracy")
    ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


PLOTS = {"tradeoff.png": plot_tradeoff, "domains.png": plot_domains}


def write_plots(results: Results, out: Path) -> list[str]:
    for name, plot in PLOTS.items():
        plot(results, out / name)
    return list(PLOTS)
