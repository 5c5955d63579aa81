"""``multidomain score``: the Decathlon score of accuracies or of a submission file (wiring)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from multidomain.data.benchmark import BENCHMARK_FILE, Benchmark, load_benchmark
from multidomain.decathlon import DOMAINS
from multidomain.metrics.decathlon_score import (
    SubmissionAccuracy,
    decathlon_score,
    read_accuracies,
    submission_accuracy,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="Decathlon score S (PAPER.md section 6) of accuracies or of a submission file",
        description=(
            "Give --accuracies ACC.json ({domain: top-1 %}) or --results SUBMISSION.json with "
            "--annotations DIR (labelled <domain>_test.json files). The benchmark (baselines) "
            "is --benchmark, else DIR's tree's benchmark.json, else the Decathlon."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--accuracies", help="JSON file: {domain: top-1 accuracy in percent}")
    source.add_argument("--results", help="submission JSON: [{image_id, category_id}, ...]")
    parser.add_argument("--annotations", help="annotations folder (or devkit root), --results")
    parser.add_argument("--benchmark", help="'decathlon' or a benchmark.json path")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_score)


def _annotations_dir(spec: str | None) -> Path:
    if spec is None:
        raise ValueError("--results needs --annotations DIR (the labelled test annotations)")
    folder = Path(spec)
    return folder / "annotations" if (folder / "annotations").is_dir() else folder


def _default_benchmark(folder: Path, domains: list[str]) -> Benchmark | None:
    candidate = folder.parent / BENCHMARK_FILE
    if candidate.is_file():
        return load_benchmark(candidate)
    return load_benchmark("decathlon") if set(domains) <= set(DOMAINS) else None


def _print_table(
    points: dict[str, float], accuracy: dict[str, float], total, counts: SubmissionAccuracy | None
) -> None:
    header = f"{'domain':<16}{'top-1 %':>10}{'points':>10}"
    print(header + (f"{'missing':>10}{'bad-class':>11}" if counts else ""))
    for domain in sorted(accuracy):
        value = f"{points[domain]:10.1f}" if domain in points else f"{'-':>10}"
        row = f"{domain:<16}{accuracy[domain]:>10.2f}{value}"
        if counts:
            row += f"{counts.missing[domain]:>10}{counts.invalid_category[domain]:>11}"
        print(row)
    print(f"score S = {total:.1f}" if total is not None else "score S: not computed")


def _prediction_notes(counts: SubmissionAccuracy) -> list[str]:
    """What the submission lacks, counted over every domain (each counts as a wrong answer)."""
    notes = []
    missing, images = sum(counts.missing.values()), sum(counts.total.values())
    if missing:
        notes.append(f"{missing} of {images} test images have no prediction (counted as wrong)")
    invalid = sum(counts.invalid_category.values())
    if invalid:
        names = "prediction names" if invalid == 1 else "predictions name"
        notes.append(f"{invalid} {names} no category of its image's domain (counted as wrong)")
    return notes


def _score_results(args: argparse.Namespace):
    """Accuracy, score (or None), notes and counts of a submission file."""
    folder = _annotations_dir(args.annotations)
    counts = submission_accuracy(args.results, folder)
    accuracy = counts.accuracy
    benchmark = (
        load_benchmark(args.benchmark)
        if args.benchmark
        else _default_benchmark(folder, list(accuracy))
    )
    notes = _prediction_notes(counts)
    result = None
    if benchmark is None:
        notes.append("no benchmark with baselines for these domains: give --benchmark")
    else:
        try:
            result = decathlon_score(accuracy, benchmark)
        except ValueError as err:
            notes.append(str(err))
    return accuracy, result, notes, counts


def _score(args: argparse.Namespace) -> int:
    counts, notes = None, []
    if args.accuracies:
        accuracy = read_accuracies(args.accuracies)
        result = decathlon_score(accuracy, load_benchmark(args.benchmark or "decathlon"))
    else:
        accuracy, result, notes, counts = _score_results(args)
    if args.json:
        payload = result.to_json() if result else {"score": None, "per_domain": {}}
        payload["accuracy"] = accuracy
        if counts:
            payload.update(
                missing=counts.missing,
                invalid_category=counts.invalid_category,
                test_images=counts.total,
            )
        if notes:
            payload["note"] = "; ".join(notes)
        print(json.dumps(payload, indent=2, sort_keys=True))
    else:
        _print_table(result.per_domain if result else {}, accuracy, result and result.score, counts)
        for note in notes:
            print(f"note: {note}")
    return 0
