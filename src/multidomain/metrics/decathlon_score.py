"""The Visual Decathlon score (PAPER.md section 6).

S = sum_d alpha_d * max(0, Emax_d - E_d)^2 with E_d the test error (a fraction),
Emax_d = 2 * baseline error and alpha_d = 1000 / Emax_d^2: a perfect domain gives 1000, the
baseline error 250, twice the baseline error or worse 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from multidomain.data.benchmark import Benchmark
from multidomain.data.devkit import read_split
from multidomain.data.submission import read_submission

logger = logging.getLogger(__name__)


def _check_percent(value: float, what: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"{what} = {value} is not a top-1 accuracy in percent (0..100)")
    return value


def domain_points(accuracy: float, baseline_accuracy: float) -> float:
    """Points of one domain from its top-1 accuracy and the baseline's, both in percent."""
    error = 1.0 - _check_percent(accuracy, "accuracy") / 100.0
    baseline_error = 1.0 - _check_percent(baseline_accuracy, "baseline accuracy") / 100.0
    if baseline_error <= 0.0:
        raise ValueError("a baseline accuracy of 100% leaves no room to score: Emax would be 0")
    max_error = 2.0 * baseline_error
    alpha = 1000.0 / max_error**2
    return alpha * max(0.0, max_error - error) ** 2


@dataclass(frozen=True)
class ScoreResult:
    """Total score and per-domain points."""

    score: float
    per_domain: dict[str, float]

    def to_json(self) -> dict:
        return {"score": self.score, "per_domain": dict(self.per_domain)}


def decathlon_score(accuracies: dict[str, float], benchmark: Benchmark) -> ScoreResult:
    """Score top-1 accuracies (%) against a benchmark's baselines.

    Raises:
        ValueError: naming a benchmark domain missing from ``accuracies``, or when the
            benchmark's baselines have not been measured.
    """
    missing = sorted(set(benchmark.domains) - set(accuracies))
    if missing:
        raise ValueError(
            f"no accuracy for domain(s) {', '.join(missing)} of benchmark {benchmark.name!r}: "
            "the score needs every domain"
        )
    extra = sorted(set(accuracies) - set(benchmark.domains))
    if extra:
        logger.warning("ignoring domains outside benchmark %s: %s", benchmark.name, extra)
    baselines = benchmark.baseline_accuracies()
    per_domain = {
        name: domain_points(_check_percent(accuracies[name], name), baselines[name])
        for name in sorted(benchmark.domains)
    }
    return ScoreResult(score=sum(per_domain.values()), per_domain=per_domain)


@dataclass(frozen=True)
class SubmissionAccuracy:
    """Per-domain accuracy (%) of a submission, with the counts behind it."""

    accuracy: dict[str, float]
    correct: dict[str, int]
    total: dict[str, int]
    missing: dict[str, int]


def submission_accuracy(submission: str | Path, annotations: str | Path) -> SubmissionAccuracy:
    """Top-1 accuracy per domain of a submission against labelled ``<domain>_test.json`` files.

    A test image without a prediction counts as wrong (and is counted in ``missing``).

    Raises:
        FileNotFoundError: when ``annotations`` holds no labelled test file.
    """
    predictions = read_submission(submission)
    files = sorted(Path(annotations).glob("*_test.json"))
    if not files:
        raise FileNotFoundError(
            f"no labelled test annotations (<domain>_test.json) in {annotations}: "
            "score a submission against the labelled test files"
        )
    result = SubmissionAccuracy({}, {}, {}, {})
    for path in files:
        domain = path.name[: -len("_test.json")]
        records = read_split(path)
        hits = [
            predictions.get(i) == c
            for i, c in zip(records.image_ids, records.category_ids, strict=True)
        ]
        result.correct[domain] = sum(hits)
        result.total[domain] = len(hits)
        result.missing[domain] = sum(i not in predictions for i in records.image_ids)
        result.accuracy[domain] = 100.0 * sum(hits) / max(1, len(hits))
    return result
