"""``multidomain score`` trusts no input (issue 8, section 4).

``--accuracies``: fractions (0.9 for 90%), booleans, strings, null and out-of-range values are
refused naming the domain. ``--results``: ids must be JSON integers, each image once, and test
images of the annotation files; missing predictions and categories of another domain are counted
and reported (table and JSON) as wrong answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_helpers import run_cli
from multidomain.data.devkit import category_id, image_id, split_document
from multidomain.data.submission import read_submission
from multidomain.decathlon import BASELINE_ACCURACY, DOMAINS
from multidomain.errors import DataError
from multidomain.metrics.decathlon_score import read_accuracies, submission_accuracy

TEST_DOMAINS = {"svhn": 3, "dtd": 2}  # domain: classes; two test images per class


def _annotations(folder: Path) -> dict[str, list[tuple[int, int]]]:
    """Labelled ``<domain>_test.json`` files; returns each domain's ``(image id, category id)``."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for domain, classes in TEST_DOMAINS.items():
        d = DOMAINS.index(domain)
        categories = [{"id": category_id(d, c), "name": f"class{c}"} for c in range(classes)]
        images = [
            {"id": image_id(d, n + 1), "file_name": f"data/{domain}/{n}.png", "width": 8}
            for n in range(2 * classes)
        ]
        labels = [category_id(d, n % classes) for n in range(2 * classes)]
        document = split_document(images, labels, categories, "tiny")
        (folder / f"{domain}_test.json").write_text(json.dumps(document))
        truth[domain] = [(img["id"], label) for img, label in zip(images, labels, strict=True)]
    return truth


def _write(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _entries(pairs) -> list[dict]:
    return [{"image_id": i, "category_id": c} for i, c in pairs]


# -- --accuracies ----------------------------------------------------------------------------
def test_fractions_are_refused_with_the_fix(tmp_path):
    fractions = {domain: value / 100 for domain, value in BASELINE_ACCURACY.items()}
    path = _write(tmp_path / "acc.json", fractions)
    with pytest.raises(DataError, match=r"fractions.*percent.*multiply .*by 100") as info:
        read_accuracies(path)
    assert info.value.exit_code == 3 and "\n" not in str(info.value)


def test_one_fraction_like_value_among_percentages_is_accepted(tmp_path):
    path = _write(tmp_path / "acc.json", {"svhn": 0.5, "dtd": 55.0})
    assert read_accuracies(path) == {"svhn": 0.5, "dtd": 55.0}


def test_all_zero_accuracies_are_not_fractions(tmp_path):
    path = _write(tmp_path / "acc.json", {"svhn": 0, "dtd": 0.0})
    assert read_accuracies(path) == {"svhn": 0.0, "dtd": 0.0}


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "true"), (False, "false"), ("90", '"90"'), (None, "null"), ([90], r"\[90\]")],
)
def test_values_that_are_not_numbers_are_refused_naming_the_domain(tmp_path, value, shown):
    path = _write(tmp_path / "acc.json", {"svhn": 90.0, "dtd": value})
    with pytest.raises(DataError, match=rf"'dtd'.*{shown}.*a number of percent"):
        read_accuracies(path)


@pytest.mark.parametrize("text", ['{"dtd": -1}', '{"dtd": 100.5}', '{"dtd": NaN}'])
def test_values_outside_0_to_100_are_refused_naming_the_domain(tmp_path, text):
    path = _write(tmp_path / "acc.json", text)
    with pytest.raises(DataError, match=r"'dtd'.*0\.\.100"):
        read_accuracies(path)


@pytest.mark.parametrize("content", [[90.0, 80.0], 90.0, {}])
def test_an_accuracies_file_must_be_a_non_empty_object(tmp_path, content):
    path = _write(tmp_path / "acc.json", content)
    with pytest.raises(DataError, match=r"\{domain: top-1 accuracy in percent\}"):
        read_accuracies(path)


def test_cli_refuses_fractions_in_one_line(tmp_path, monkeypatch, capsys):
    fractions = {domain: value / 100 for domain, value in BASELINE_ACCURACY.items()}
    path = _write(tmp_path / "acc.json", fractions)
    assert run_cli(["score", "--accuracies", str(path)], monkeypatch) == 3  # a data error
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "percent" in captured.err and captured.err.count("\n") == 1


def test_cli_refuses_true_as_an_accuracy(tmp_path, monkeypatch, capsys):
    accuracies = {**BASELINE_ACCURACY, "svhn": True}
    path = _write(tmp_path / "acc.json", accuracies)
    assert run_cli(["score", "--accuracies", str(path)], monkeypatch) == 3  # a data error
    err = capsys.readouterr().err
    assert "'svhn'" in err and "true" in err and err.count("\n") == 1


# -- --results: the file itself --------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ({"image_id": 30000001.0, "category_id": 30000001}, "image_id 30000001.0"),
        ({"image_id": "30000001", "category_id": 30000001}, 'image_id "30000001"'),
        ({"image_id": True, "category_id": 30000001}, "image_id true"),
        ({"image_id": 30000001, "category_id": 30000001.5}, "category_id 30000001.5"),
        ({"image_id": 30000001, "category_id": None}, "category_id null"),
    ],
)
def test_ids_must_be_json_integers(tmp_path, entry, shown):
    path = _write(tmp_path / "results.json", [{"image_id": 30000002, "category_id": 1}, entry])
    with pytest.raises(DataError, match=rf"entry 1 .*{shown}.*integer") as info:
        read_submission(path)
    assert info.value.exit_code == 3


@pytest.mark.parametrize("second", [30000001, "30000001"])
def test_the_same_image_twice_is_refused(tmp_path, second):
    entries = [{"image_id": 30000001, "category_id": 1}, {"image_id": second, "category_id": 2}]
    with pytest.raises(DataError, match="entry 1"):
        read_submission(_write(tmp_path / "results.json", entries))


def test_a_submission_must_be_a_list_of_pairs(tmp_path):
    with pytest.raises(DataError, match="JSON list"):
        read_submission(_write(tmp_path / "results.json", {"image_id": 1}))
    with pytest.raises(DataError, match="entry 0 .*image_id and category_id"):
        read_submission(_write(tmp_path / "results.json", [{"image_id": 1}]))


# -- --results against the annotations -------------------------------------------------------
def test_ids_that_are_not_test_images_are_counted_and_refused(tmp_path):
    truth = _annotations(tmp_path / "annotations")
    pairs = [pair for pairs in truth.values() for pair in pairs]
    strangers = [(image_id(DOMAINS.index("svhn"), 99), 1), (123, 4), (image_id(0, 1), 5)]
    path = _write(tmp_path / "results.json", _entries(pairs + strangers))
    with pytest.raises(DataError, match=r"3 image ids .*not test images.*123") as info:
        submission_accuracy(path, tmp_path / "annotations")
    assert info.value.exit_code == 3


def test_missing_predictions_are_counted_per_domain(tmp_path):
    truth = _annotations(tmp_path / "annotations")
    pairs = truth["svhn"][2:] + truth["dtd"]  # two svhn images without a prediction
    result = submission_accuracy(
        _write(tmp_path / "results.json", _entries(pairs)), tmp_path / "annotations"
    )
    assert result.missing == {"dtd": 0, "svhn": 2}
    assert result.total == {"dtd": 4, "svhn": 6}
    assert result.accuracy["svhn"] == pytest.approx(100 * 4 / 6)  # missing counts as wrong


def test_categories_of_another_domain_are_counted_as_wrong(tmp_path):
    truth = _annotations(tmp_path / "annotations")
    dtd_category = truth["dtd"][0][1]
    svhn = [(i, dtd_category) for i, _ in truth["svhn"][:2]] + truth["svhn"][2:]
    svhn[2] = (svhn[2][0], 999)  # not a category at all
    result = submission_accuracy(
        _write(tmp_path / "results.json", _entries(svhn + truth["dtd"])), tmp_path / "annotations"
    )
    assert result.invalid_category == {"dtd": 0, "svhn": 3}
    assert result.correct == {"dtd": 4, "svhn": 3}
    assert result.accuracy["svhn"] == pytest.approx(50.0)


def test_cli_reports_missing_and_invalid_predictions(tmp_path, monkeypatch, capsys):
    truth = _annotations(tmp_path / "devkit" / "annotations")
    pairs = truth["svhn"][1:] + truth["dtd"][:-1]
    pairs[0] = (pairs[0][0], 999)
    path = _write(tmp_path / "results.json", _entries(pairs))
    argv = ["score", "--results", str(path), "--annotations", str(tmp_path / "devkit")]
    assert run_cli([*argv, "--json"], monkeypatch) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["missing"] == {"dtd": 1, "svhn": 1}
    assert payload["invalid_category"] == {"dtd": 0, "svhn": 1}
    assert payload["test_images"] == {"dtd": 4, "svhn": 6}
    assert run_cli(argv, monkeypatch) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["domain", "top-1", "%", "points", "missing", "bad-class"]
    assert table[1].split() == ["dtd", "75.00", "-", "1", "0"]
    assert table[2].split() == ["svhn", "66.67", "-", "1", "1"]
    assert any("2 of 10 test images have no prediction" in line for line in table)
    assert any("1 prediction names no category of its image's domain" in line for line in table)


def test_cli_refuses_a_submission_with_float_ids_in_one_line(tmp_path, monkeypatch, capsys):
    truth = _annotations(tmp_path / "annotations")
    entries = _entries(truth["svhn"] + truth["dtd"])
    entries[3]["image_id"] = float(entries[3]["image_id"])
    path = _write(tmp_path / "results.json", entries)
    argv = ["score", "--results", str(path), "--annotations", str(tmp_path / "annotations")]
    assert run_cli(argv, monkeypatch) == 3  # a data error
    err = capsys.readouterr().err
    assert "entry 3" in err and err.count("\n") == 1


def test_the_python_api_refuses_booleans_but_takes_numpy_numbers():
    import numpy as np

    from multidomain.metrics.decathlon_score import domain_points

    with pytest.raises(DataError, match="True is not a top-1 accuracy in percent"):
        domain_points(True, 80.0)
    assert domain_points(np.float32(80.0), np.float64(80.0)) == pytest.approx(250.0)
