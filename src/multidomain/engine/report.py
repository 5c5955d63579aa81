"""Human-readable results: the evaluation table, ``report.md`` and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from multidomain.engine.logs import read_metrics
from multidomain.interpret.gates import write_gate_maps


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def eval_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for domain, entry in report["domains"].items():
        rows.append(
            (
                domain,
                _fmt(entry["accuracy"], ".2f"),
                _fmt(entry["baseline_accuracy"], ".2f"),
                f"{entry['own_parameters']:,}",
                _fmt(entry["points"], ".0f"),
            )
        )
    return rows


def summary_lines(report: dict[str, Any]) -> list[str]:
    params = report["parameters"]
    lines = [
        f"mean top-1: {_fmt(report['mean_accuracy'], '.2f')}%",
        score_line(report),
        f"parameters: {params['total']:,} in all, {params['shared']:,} shared; "
        f"{report['ratio_to_independent']:.2f}x the {report['independent_parameters']:,} of "
        f"independent networks; {params['relative']:.2f}x one ResNet-26 (heads excluded)",
    ]
    return lines


def score_line(report: dict[str, Any]) -> str:
    """The score when every domain of the benchmark has points; else why there is none."""
    if report["score"] is None:
        return f"Decathlon score S: not computed: {report['score_note']}"
    return f"Decathlon score S: {report['score']:.0f} (max {1000 * len(report['domains'])})"


def format_eval_table(report: dict[str, Any]) -> str:
    header = ("domain", "top-1 %", "baseline %", "own params", "points")
    rows = [header, *eval_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"{report['benchmark']} — {report['split']} split"]
    for row in rows:
        lines.append(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join([*lines, "", *summary_lines(report)])


def write_report(out: Path, report: dict[str, Any], runs: dict[str, Path], extra: str = "") -> Path:
    """``report.md`` plus ``accuracy.png``, ``parameters.png`` and ``curves.png`` in ``out``."""
    plots = {
        "accuracy.png": plot_accuracy(report, out / "accuracy.png"),
        "parameters.png": plot_parameters(report, out / "parameters.png"),
        "curves.png": plot_curves(runs, out / "curves.png"),
    }
    gate_maps = write_gate_maps(report.get("gates", {}), out)  # soft sharing only
    header = ("domain", "top-1 %", "baseline %", "own params", "points")
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(row) + " |" for row in eval_rows(report)]
    text = [
        "# multidomain report",
        "",
        f"Benchmark: {report['benchmark']} ({report['data_root']}), split: {report['split']}.",
        "",
        *table,
        "",
        *(f"- {line}" for line in summary_lines(report)),
        "",
        extra,
        "",
        *(f"![{name}]({name})" for name, made in plots.items() if made),
        "",
        *_gate_section(gate_maps, report["split"]),
    ]
    path = out / "report.md"
    path.write_text("\n".join(text))
    return path


def _gate_section(gate_maps: dict[str, str], split: str) -> list[str]:
    if not gate_maps:
        return []
    lines = [
        "## Soft-sharing gates",
        "",
        f"Mean gate weight per layer (rows) and bank (columns) of each target domain, over its "
        f"{split} images; each row sums to 1.",
        "",
    ]
    return lines + [f"![gates of {d}]({name})" for d, name in gate_maps.items()] + [""]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(report: dict[str, Any], path: Path) -> bool:
    plt = _pyplot()
    domains = list(report["domains"])
    ours = [report["domains"][d]["accuracy"] or 0.0 for d in domains]
    base = [report["domains"][d]["baseline_accuracy"] for d in domains]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = range(len(domains))
    ax.bar([i - 0.2 for i in x], ours, width=0.4, label="this model")
    if all(b is not None for b in base):
        ax.bar([i + 0.2 for i in x], base, width=0.4, label="baseline (fine-tuned per domain)")
    ax.set_xticks(list(x), domains, rotation=30, ha="right")
    ax.set_ylabel(f"top-1 % ({report['split']})")
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right")
    ax.set_title("Per-domain accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_parameters(report: dict[str, Any], path: Path) -> bool:
    plt = _pyplot()
    params = report["parameters"]
    domains = list(params["per_domain"])
    own = [params["per_domain"][d] - params["heads"][d] for d in domains]
    heads = [params["heads"][d] for d in domains]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(["shared"], [params["shared"]], color="grey")
    ax.bar(domains, own, label="own layers")
    ax.bar(domains, heads, bottom=own, label="head")
    ax.set_ylabel("parameters")
    ax.set_title(
        f"Parameters: {params['total']:,} in all "
        f"({report['ratio_to_independent']:.2f}x independent networks)"
    )
    ax.tick_params(axis="x", rotation=30)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_curves(runs: dict[str, Path], path: Path) -> bool:
    """Training loss and validation accuracy of each run, against the step."""
    records = {name: read_metrics(run) for name, run in runs.items()}
    if not any(records.values()):
        return False
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, events in records.items():
        train = [e for e in events if e["event"] == "train"]
        loss_ax.plot([e["step"] for e in train], [e["loss"] for e in train], label=name)
        val = [e for e in events if e["event"] == "val"]
        for domain in sorted({d for e in val for d in e["accuracy"]}):
            points = [(e["step"], e["accuracy"][domain]) for e in val if domain in e["accuracy"]]
            acc_ax.plot(*zip(*points, strict=True), marker=".", label=f"{name}: {domain}")
    loss_ax.set(xlabel="step", ylabel="training loss", title="Training loss")
    acc_ax.set(xlabel="step", ylabel="val top-1 %", title="Validation accuracy")
    loss_ax.legend(fontsize="small")
    acc_ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
