"""The compare's tables as data: one record per row (means and spreads over seeds), the content
of ``compare.csv`` and ``compare.json``."""

from __future__ import annotations

from typing import Any

from multidomain.engine.compare.published import PUBLISHED
from multidomain.engine.compare.results import Results, RowResult
from multidomain.engine.compare.stats import Summary


def _pair(summary: Summary | None) -> tuple[float | None, float | None]:
    return (None, None) if summary is None else (summary.mean, summary.std)


def row_record(result: RowResult, results: Results) -> dict[str, Any]:
    """Flat values of one row: the columns of ``compare.csv``."""
    row = result.row
    record: dict[str, Any] = {
        "row": row.name,
        "backbone": row.source,
        "method": row.method,
        "trains": row.trains,
        "seeds": len(result.seeds),
        "epochs": "+".join(map(str, result.epochs)),
        "relative_params": round(result.relative_params, 4),
        "total_params": result.total_params,
    }
    record["score_mean"], record["score_std"] = _pair(result.score)
    record["mean_accuracy_mean"], record["mean_accuracy_std"] = _pair(result.mean)
    for domain in results.domains:
        record[f"{domain}_mean"], record[f"{domain}_std"] = _pair(result.domain(domain))
    published = PUBLISHED.get(row.name, (None, None))
    record["published_score"], record["published_relative_params"] = published
    return record


def records(results: Results) -> list[dict[str, Any]]:
    return [row_record(result, results) for result in results.rows.values()]


def per_seed(results: Results) -> dict[str, Any]:
    """Every run's figures, keyed by row then seed (``compare.json``)."""
    runs: dict[str, Any] = {}
    for name, result in results.rows.items():
        runs[name] = {
            str(seed): {
                "accuracy": {d: result.accuracy[d][i] for d in results.domains},
                "mean_accuracy": result.mean_accuracy[i],
                "score": result.scores[i] if result.scores else None,
            }
            for i, seed in enumerate(result.seeds)
        }
    return runs
