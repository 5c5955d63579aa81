"""``compare.md``, ``compare.csv`` and ``compare.json`` (issue 10): the table of every row with
mean and spread over seeds, per-domain accuracy, the published Decathlon numbers beside ours,
the research questions answered, and the plots."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from multidomain.engine.compare.plots import write_plots
from multidomain.engine.compare.published import PUBLISHED, SOURCE
from multidomain.engine.compare.questions import answers
from multidomain.engine.compare.results import Results
from multidomain.engine.compare.tables import per_seed, records
from multidomain.io import atomic_path, write_json

RULE = (
    "A difference exceeds the spread when |difference of means| > 2 x the pooled standard "
    "deviation over seeds; with one seed the spread is unknown."
)
PROTOCOL = [
    "Every row uses one augmentation protocol, Guo's (as the recipes have it): random crops for "
    "the domains that take them, no flips. Rebuffi's adapter papers used horizontal flips in "
    "training and a 64 px centre crop at test.",
    "Weight decay: 5e-4 for every row, adapters included (the project's value, the recipes' "
    "optim.weight_decay): the adapter papers' per-domain values are not published in code.",
    "Same budget: every stage of every row trains the same epochs; a row that starts from "
    "another row's trained model (soft after pointwise) counts both stages in `epochs`.",
]


def _text(summary, spec: str = ".1f") -> str:
    return "-" if summary is None else summary.text(spec)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(line) + " |" for line in lines]


def main_table(results: Results) -> list[str]:
    header = ["row", "backbone", "method", "trains", "epochs", "#par", "mean top-1 %", "score"]
    lines = []
    for name, r in results.rows.items():
        lines.append([f"`{name}`", r.row.source, r.row.method, r.row.trains,
                      " + ".join(map(str, r.epochs)), f"{r.relative_params:.2f}x",
                      _text(r.mean), _text(r.score, ".0f")])  # fmt: skip
    return _table(header, lines)


def domain_table(results: Results) -> list[str]:
    lines = [[f"`{n}`", *(_text(r.domain(d)) for d in results.domains)]
             for n, r in results.rows.items()]  # fmt: skip
    return _table(["row", *results.domains], lines)


def published_table(results: Results) -> list[str]:
    header = ["row", "published S (Decathlon)", "published #par", "our S", "our #par"]
    lines = []
    for name, r in results.rows.items():
        score, params = PUBLISHED.get(name, (None, None))
        published = _num(params, ".0f") + ("x" if params else "")
        lines.append([f"`{name}`", _num(score, ".0f"), published, _text(r.score, ".0f"),
                      f"{r.relative_params:.2f}x"])  # fmt: skip
    return _table(header, lines)


def markdown(results: Results, header: list[str], plots: list[str]) -> str:
    questions = [f"- **{q}**: {a}" for q, a in answers(results).items()]
    text = [
        "# multidomain compare", "", *header, f"- data: {results.data_root}",
        f"- score scale: {results.scale_note}.", "", "## The table (mean ± std over seeds)", "",
        *main_table(results), "", "#par: parameters without heads over one standard ResNet-26 "
        "at the same width. Epochs: per target, stage by stage.", "",
        "## Per-domain test top-1 % (mean ± std over seeds)", "", *domain_table(results), "",
        "## Published Decathlon numbers beside ours", "",
        f"Published on other data (the Visual Decathlon: ten full-size domains; {SOURCE}); "
        "ours are on the mini-decathlon, so only the ranking can be set side by side.", "",
        *published_table(results), "", "## Research questions", "", RULE, "", *questions, "",
        "## Protocol", "", *(f"- {line}" for line in PROTOCOL), "",
        *(f"![{name}]({name})" for name in plots), "",
    ]  # fmt: skip
    return "\n".join(text)


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_outputs(results: Results, out: Path, header: list[str]) -> Path:
    """Write every output of the compare into ``out``; returns the path of ``compare.md``."""
    plots = write_plots(results, out)
    rows = records(results)
    _write_text(out / "compare.csv", csv_text(rows))
    write_json(out / "compare.json", {
        "settings": header, "data_root": results.data_root, "score_scale": results.scale_note,
        "baseline_accuracy": results.baselines, "domains": results.domains, "rows": rows,
        "runs": per_seed(results), "source_accuracy": results.source_accuracy,
        "source_domain": results.source_domain, "questions": answers(results), "rule": RULE,
    })  # fmt: skip
    _write_text(out / "compare.md", markdown(results, header, plots))
    return out / "compare.md"
