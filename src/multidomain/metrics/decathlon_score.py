"""The Visual Decathlon score (PAPER.md section 6).

S = sum_d alpha_d * max(0, Emax_d - E_d)^2 with E_d the test error (a fraction),
Emax_d = 2 * baseline error and alpha_d = 1000 / Emax_d^2: a perfect domain gives 1000, the
baseline error 250, twice the baseline error or worse 0.
"""

from __future__ import annotations

import json
import logging
import numbers
from dataclasses import dataclass, field
from pathlib import Path

from multidomain.data.benchmark import Benchmark
from multidomain.data.devkit import SplitRecords, read_split
from multidomain.data.submission import read_submission
from multidomain.errors import DataError
from multidomain.io import read_json

logger = logging.getLogger(__name__)


def _check_percent(value: float, what: str) -> float:
    # numbers.Real: Python and NumPy numbers; bool is one too, but ``true`` is not 1%
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"{what} = {value!r} is not a top-1 accuracy in percent (0..100)")
    value = float(value)
    if not 0.0 <= value <= 100.0:
        raise DataError(f"{what} = {value} is not a top-1 accuracy in percent (0..100)")
    return value


def read_accuracies(path: str | Path) -> dict[str, float]:
    """``{domain: top-1 accuracy in percent}`` from a JSON file, strictly checked.

    Raises:
        DataError: when the file is not a JSON object of numbers, a value is outside 0..100
            (naming the domain), or every value is at most 1 (fractions, not percentages).
    """
    content = read_json(path, "accuracies file")  # DataError when it is not JSON
    if not isinstance(content, dict) or not content:
        raise DataError(
            f"{path}: expected a JSON object {{domain: top-1 accuracy in percent}}, "
            'such as {"svhn": 96.1, "dtd": 55.3}'
        )
    accuracies = {domain: _accuracy_value(domain, value, path) for domain, value in content.items()}
    _refuse_fractions(accuracies, path)
    return accuracies


def _accuracy_value(domain: str, value: object, path) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(
            f"{path}: the accuracy of {domain!r} is {json.dumps(value)}, not a number of "
            "percent (0..100) such as 96.1"
        )
    if not 0.0 <= value <= 100.0:
        raise DataError(
            f"{path}: the accuracy of {domain!r} is {value}, outside 0..100 "
            "(top-1 accuracy in percent)"
        )
    return float(value)


def _refuse_fractions(accuracies: dict[str, float], path) -> None:
    """All values in 0..1 with one above 0 are fractions (0.9 for 90%): they would score ~0."""
    values = list(accuracies.values())
    if max(values) <= 1.0 and max(values) > 0.0:
        shown = ", ".join(f"{domain}: {value}" for domain, value in list(accuracies.items())[:3])
        shown += ", ..." if len(accuracies) > 3 else ""
        raise DataError(
            f"{path}: every accuracy is at most 1 ({shown}): these look like fractions, "
            "but the score needs percentages: multiply each value by 100 (0.9 -> 90)"
        )


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
    """Per-domain accuracy (%) of a submission, with the counts behind it.

    Attributes:
        accuracy: top-1 accuracy in percent; a missing or invalid prediction counts as wrong.
        correct: right predictions.
        total: test images.
        missing: test images without a prediction.
        invalid_category: predictions naming no category of the image's domain.
    """

    accuracy: dict[str, float]
    correct: dict[str, int]
    total: dict[str, int]
    missing: dict[str, int]
    invalid_category: dict[str, int] = field(default_factory=dict)


def submission_accuracy(submission: str | Path, annotations: str | Path) -> SubmissionAccuracy:
    """Top-1 accuracy per domain of a submission against labelled ``<domain>_test.json`` files.

    A test image without a prediction, or predicted as a category of another domain, counts
    as wrong (and is counted in ``missing`` or ``invalid_category``).

    Raises:
        FileNotFoundError: when ``annotations`` holds no labelled test file.
        DataError: when the submission is malformed (see ``read_submission``) or predicts
            images that are not test images of the annotation files (counted, a few named).
    """
    predictions = read_submission(submission)
    files = sorted(Path(annotations).glob("*_test.json"))
    if not files:
        raise FileNotFoundError(
            f"no labelled test annotations (<domain>_test.json) in {annotations}: "
            "score a submission against the labelled test files"
        )
    splits = {path.name[: -len("_test.json")]: read_split(path) for path in files}
    _refuse_unknown_images(predictions, splits, submission, annotations)
    result = SubmissionAccuracy({}, {}, {}, {})
    for domain, records in splits.items():
        _score_domain(result, domain, records, predictions)
    return result


def _refuse_unknown_images(
    predictions: dict[int, int], splits: dict[str, SplitRecords], submission, annotations
) -> None:
    test_images = {i for records in splits.values() for i in records.image_ids}
    unknown = sorted(set(predictions) - test_images)
    if unknown:
        shown = ", ".join(map(str, unknown[:5]))
        raise DataError(
            f"{len(unknown)} image ids of {submission} are not test images of the annotation "
            f"files in {annotations} (e.g. {shown}): predict only the test images of "
            f"{', '.join(splits)}, or give the annotations folder that holds them"
        )


def _score_domain(
    result: SubmissionAccuracy, domain: str, records: SplitRecords, predictions: dict[int, int]
) -> None:
    categories = {category["id"] for category in records.categories}
    categories = categories or set(records.category_ids)  # a file without a categories list
    guesses = [predictions.get(i) for i in records.image_ids]
    hits = sum(g == c for g, c in zip(guesses, records.category_ids, strict=True))
    result.correct[domain] = hits
    result.total[domain] = len(guesses)
    result.missing[domain] = guesses.count(None)
    result.invalid_category[domain] = sum(g is not None and g not in categories for g in guesses)
    result.accuracy[domain] = 100.0 * hits / max(1, len(guesses))
