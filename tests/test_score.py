"""The Decathlon score (PAPER.md section 6) and the submission round trip."""

from __future__ import annotations

import json

import pytest

from data_helpers import make_devkit, run_cli
from multidomain.data.benchmark import Benchmark, DomainInfo, decathlon_benchmark
from multidomain.data.dataset import DecathlonDataset
from multidomain.data.submission import read_submission, submission_entries, write_submission
from multidomain.decathlon import BASELINE_ACCURACY
from multidomain.metrics.decathlon_score import decathlon_score, domain_points


def _benchmark(baselines: dict[str, float | None]) -> Benchmark:
    domains = {
        name: DomainInfo(2, (0.5,) * 3, (0.2,) * 3, baseline_accuracy=acc)
        for name, acc in baselines.items()
    }
    return Benchmark(name="hand", domains=domains)


def test_hand_computed_points():
    assert domain_points(100.0, 80.0) == pytest.approx(1000.0)  # zero error
    assert domain_points(80.0, 80.0) == pytest.approx(250.0)  # the baseline error
    assert domain_points(60.0, 80.0) == 0.0  # twice the baseline error
    assert domain_points(10.0, 80.0) == 0.0  # worse than twice: clipped
    # E = 0.3, baseline E = 0.2: Emax = 0.4, alpha = 1000 / 0.16, (0.4 - 0.3)^2 = 0.01 -> 62.5
    assert domain_points(70.0, 80.0) == pytest.approx(62.5)


def test_decathlon_baseline_scores_2500():
    result = decathlon_score(dict(BASELINE_ACCURACY), decathlon_benchmark())
    assert abs(result.score - 2500.0) < 1e-9
    assert all(abs(points - 250.0) < 1e-9 for points in result.per_domain.values())
    perfect = decathlon_score(dict.fromkeys(BASELINE_ACCURACY, 100.0), decathlon_benchmark())
    assert perfect.score == pytest.approx(10_000.0)


def test_missing_domain_is_named():
    accuracies = dict(BASELINE_ACCURACY)
    del accuracies["ucf101"]
    with pytest.raises(ValueError, match="ucf101"):
        decathlon_score(accuracies, decathlon_benchmark())


def test_accuracy_must_be_a_percentage():
    with pytest.raises(ValueError, match="percent"):
        domain_points(101.0, 80.0)


def test_unmeasured_baselines_are_an_error_not_an_invention():
    with pytest.raises(ValueError, match=r"not been measured.*baseline recipe"):
        decathlon_score({"a": 90.0, "b": 80.0}, _benchmark({"a": 80.0, "b": None}))


def test_cli_accuracies_json(tmp_path, monkeypatch, capsys):
    path = tmp_path / "acc.json"
    path.write_text(json.dumps(BASELINE_ACCURACY))
    assert run_cli(["score", "--accuracies", str(path), "--json"], monkeypatch) == 0
    payload = json.loads(capsys.readouterr().out)
    assert abs(payload["score"] - 2500.0) < 1e-9
    assert set(payload["per_domain"]) == set(BASELINE_ACCURACY)


def test_cli_missing_domain_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    path = tmp_path / "acc.json"
    path.write_text(json.dumps({"svhn": 96.0}))
    assert run_cli(["score", "--accuracies", str(path)], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "aircraft" in err and err.count("\n") == 1


def test_cli_benchmark_without_baselines(tmp_path, monkeypatch, capsys):
    bench = tmp_path / "benchmark.json"
    entry = {"num_classes": 2, "mean": [0.5] * 3, "std": [0.2] * 3, "baseline_accuracy": None}
    bench.write_text(json.dumps({"name": "mini", "domains": {"a": entry}}))
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"a": 50.0}))
    argv = ["score", "--accuracies", str(acc), "--benchmark", str(bench)]
    assert run_cli(argv, monkeypatch) == 3  # a data error: the benchmark lacks its baselines
    assert "have not been measured yet" in capsys.readouterr().err


def _perfect_submission(tree, tmp_path, wrong: int = 0):
    entries = []
    for domain in ("daimlerpedcls", "dtd", "svhn"):
        dataset = DecathlonDataset(tree, domain, "test", transform=lambda image: image)
        predicted = list(dataset.labels)
        for i in range(wrong if domain == "svhn" else 0):
            predicted[i] = (predicted[i] + 1) % dataset.num_classes
        entries += submission_entries(dataset, predicted)
    return write_submission(tmp_path / "out" / "results.json", entries)


def test_submission_round_trip_through_the_scorer(tmp_path, monkeypatch, capsys):
    tree = make_devkit(tmp_path / "devkit")
    path = _perfect_submission(tree, tmp_path, wrong=3)
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp file left
    argv = ["score", "--results", str(path), "--annotations", str(tree), "--json"]
    assert run_cli(argv, monkeypatch) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["accuracy"]["dtd"] == 100.0
    assert payload["accuracy"]["daimlerpedcls"] == 100.0
    assert payload["accuracy"]["svhn"] == pytest.approx(50.0)  # 3 of 6 wrong
    assert payload["score"] is None and "aircraft" in payload["note"]  # not all domains


def test_submission_ids_are_prefixed(tmp_path):
    tree = make_devkit(tmp_path / "devkit")
    path = _perfect_submission(tree, tmp_path)
    predictions = read_submission(path)
    assert {image_id // 10_000_000 for image_id in predictions} == {3, 4, 8}
    assert all(cid // 10_000_000 == iid // 10_000_000 for iid, cid in predictions.items())


def test_submission_entries_check_their_input(tmp_path):
    tree = make_devkit(tmp_path / "devkit", {"svhn": (2, (72, 72))})
    dataset = DecathlonDataset(tree, "svhn", "test", transform=lambda image: image)
    with pytest.raises(ValueError, match="3 predictions for 4 images"):
        submission_entries(dataset, [0, 1, 0])
    with pytest.raises(ValueError, match="out of range"):
        submission_entries(dataset, [0, 1, 0, 2])
    with pytest.raises(ValueError, match="twice"):
        write_submission(tmp_path / "dup.json", [{"image_id": 1, "category_id": 2}] * 2)
