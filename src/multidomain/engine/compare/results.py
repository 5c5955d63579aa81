"""The compare's results (issue 10): each run's per-domain test accuracy (``evaluate_run``,
reused from its ``eval.json`` when that is newer than the model), its mean, its Decathlon score
on the compare's scale, #par relative to one ResNet-26, and per row the values over seeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multidomain.engine.compare.plan import Stage
from multidomain.engine.compare.stats import Summary, summarize
from multidomain.engine.eval_run import evaluate_run
from multidomain.engine.rows import PRETRAIN_METHOD, Row, get_row
from multidomain.io import read_json
from multidomain.metrics.decathlon_score import domain_points

BASELINE_ROW = "finetune"


def test_report(folder: Path, kept_images: dict | None = None) -> dict[str, Any]:
    """The run's test evaluation: its ``eval.json`` when it is newer than the model, else a
    fresh ``evaluate_run`` (which writes it). ``kept_images``: shared by the evaluations of
    one compare, which then decode each test image once."""
    cached, model = folder / "eval.json", folder / "model" / "config.json"
    if cached.is_file() and cached.stat().st_mtime >= model.stat().st_mtime:
        report = read_json(cached, "evaluation")
        if report.get("split") == "test":
            return report
    return evaluate_run(folder, "test", kept_images=kept_images)


def accuracies(report: dict[str, Any]) -> dict[str, float]:
    return {d: v["accuracy"] for d, v in report["domains"].items() if v["accuracy"] is not None}


@dataclass
class RowResult:
    """One row over its seeds (lists in seed order)."""

    row: Row
    seeds: list[int] = field(default_factory=list)
    accuracy: dict[str, list[float]] = field(default_factory=dict)  # domain -> per seed
    mean_accuracy: list[float] = field(default_factory=list)
    scores: list[float] | None = None
    relative_params: float = 0.0
    total_params: int = 0
    epochs: list[int] = field(default_factory=list)  # its stage's, after those it starts from

    def domain(self, name: str) -> Summary:
        return summarize(self.accuracy[name])

    @property
    def mean(self) -> Summary:
        return summarize(self.mean_accuracy)

    @property
    def score(self) -> Summary | None:
        return summarize(self.scores) if self.scores else None


@dataclass
class Results:
    rows: dict[str, RowResult]
    domains: list[str]
    scale_note: str
    baselines: dict[str, float] | None
    source_domain: str | None
    source_accuracy: dict[str, list[float]]  # backbone -> source test top-1 per seed
    data_root: str = ""


def collect(stages: list[Stage]) -> Results:
    """Evaluate every finished row run and plain pretraining; score on the compare's scale."""
    by_folder = {s.folder: s for s in stages}
    rows: dict[str, RowResult] = {}
    reports: dict[tuple[str, int], dict[str, Any]] = {}
    kept_images: dict = {}  # every run is evaluated on the same test images
    for stage in (s for s in stages if s.row is not None):
        report = test_report(stage.folder, kept_images)
        reports[(stage.row, stage.seed)] = report
        _add_run(rows, stage, report, by_folder)
    domains = list(next(iter(reports.values()))["domains"])
    baselines, note = score_scale(rows, reports, domains)
    for result in rows.values():
        result.scores = _scores(result, domains, baselines)
    source, pair = source_accuracies(stages, kept_images)
    data_root = next(iter(reports.values()))["data_root"]
    return Results(rows, domains, note, baselines, source, pair, data_root)


def _add_run(rows, stage: Stage, report: dict[str, Any], by_folder: dict[Path, Stage]) -> None:
    result = rows.setdefault(stage.row, RowResult(get_row(stage.row)))
    result.seeds.append(stage.seed)
    for domain, accuracy in accuracies(report).items():
        result.accuracy.setdefault(domain, []).append(accuracy)
    result.mean_accuracy.append(report["mean_accuracy"])
    result.relative_params = report["parameters"]["relative"]
    result.total_params = report["parameters"]["total"]
    result.epochs = _epochs(stage, by_folder)


def _epochs(stage: Stage, by_folder: dict[Path, Stage]) -> list[int]:
    """The epochs of the stage and of the row stages it starts from (soft: pointwise's too)."""
    epochs = [stage.config.optim.epochs]
    before = by_folder.get(Path(stage.config.model.init or ""))
    if before is not None and before.row is not None:
        epochs = _epochs(before, by_folder) + epochs
    return epochs


def score_scale(rows, reports, domains) -> tuple[dict[str, float] | None, str]:
    """The baseline accuracies of the score and a sentence saying where they come from."""
    if BASELINE_ROW in rows:
        base = rows[BASELINE_ROW]
        baselines = {d: summarize(base.accuracy[d]).mean for d in domains}
        note = (
            f"baseline errors: the `{BASELINE_ROW}` row's test errors, mean over its "
            f"{len(base.seeds)} seed(s) (the Decathlon's convention: ResNet-26 fine-tuned per "
            "domain scores 250 a domain)"
        )
    else:
        report = next(iter(reports.values()))
        baselines = {d: report["domains"][d]["baseline_accuracy"] for d in domains}
        note = "baseline errors: the data tree's baselines (benchmark.json, as `eval` uses them)"
        missing = [d for d, b in baselines.items() if b is None]
        if missing:
            return None, (
                f"no Decathlon score: the data tree has no baseline for {', '.join(missing)} and "
                f"the compare has no `{BASELINE_ROW}` row (add it to --methods, or measure the "
                "baselines with `multidomain baseline`)"
            )
    perfect = [d for d, b in baselines.items() if b >= 100.0]
    if perfect:
        return None, f"no Decathlon score: the baseline is 100% on {', '.join(perfect)}"
    return baselines, note


def _scores(result: RowResult, domains, baselines) -> list[float] | None:
    if baselines is None or any(
        len(result.accuracy.get(d, [])) != len(result.seeds) for d in domains
    ):
        return None
    return [
        sum(domain_points(result.accuracy[d][i], baselines[d]) for d in domains)
        for i in range(len(result.seeds))
    ]


def source_accuracies(
    stages: list[Stage], kept_images: dict | None = None
) -> tuple[str | None, dict[str, list[float]]]:
    """Each backbone's test top-1 on the source domain after its plain pretraining (RQ1)."""
    plain = [
        s
        for s in stages
        if s.pretraining is not None and PRETRAIN_METHOD.get(s.pretraining[0]) == s.pretraining[1]
    ]
    pair: dict[str, list[float]] = {}
    source = None
    for stage in plain:
        source = stage.config.data.domains[0]
        pair.setdefault(stage.pretraining[0], []).append(
            accuracies(test_report(stage.folder, kept_images))[source]
        )
    return (source, pair) if plain else _shipped_source_accuracies(stages, kept_images)


def _shipped_source_accuracies(
    stages: list[Stage], kept_images: dict | None = None
) -> tuple[str | None, dict[str, list[float]]]:
    """Without pretraining stages (shipped source weights): the source domain's test top-1 in
    the first row per backbone that starts from the plain pretraining and leaves the source's
    weights as they came (every such row: the source domain is not among its targets)."""
    pair: dict[str, list[float]] = {}
    source = None
    for backbone in PRETRAIN_METHOD:
        rows = [s for s in stages if s.row and _plain_start(s.row) == backbone]
        first = rows and rows[0].row
        for stage in (s for s in rows if s.row == first):
            report = accuracies(test_report(stage.folder, kept_images))
            source = next(d for d in report if d not in stage.config.data.domains)
            pair.setdefault(backbone, []).append(report[source])
    return source, pair


def _plain_start(row_name: str) -> str | None:
    row = get_row(row_name)
    return row.source if row.init == "pretrained" else None
