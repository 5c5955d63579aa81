"""Evaluating a finished run reproduces the validation numbers that chose its model, and names
what is wrong when the data and the model do not match.

The runs are trained with ``run.bn_guard=false``: the guard only acts when a domain's training
accuracy is 30 points above chance while its eval-mode accuracy is at chance, which these tiny
runs never reach, and if it did act it would re-estimate BN before the checkpoint is saved, so
the saved model would still be the one validated. Turning it off removes the dependence.
"""

from __future__ import annotations

import json
import shutil

import pytest

from engine_helpers import (
    adapted_run,
    mini_root,
    pretrained_run,
    snapshot_files,
)
from multidomain.engine.eval_run import evaluate_run
from multidomain.engine.logs import read_metrics
from multidomain.io import read_json

pytestmark = pytest.mark.usefixtures("one_thread")


def copy_of(run_dir, tmp_path):
    """Evaluation writes eval.json into the run: work on a copy of the shared runs."""
    return shutil.copytree(run_dir, tmp_path / run_dir.parent.name)


def val_events(run_dir) -> dict[int, dict[str, float]]:
    return {e["epoch"]: e["accuracy"] for e in read_metrics(run_dir) if e["event"] == "val"}


def accuracies(report) -> dict[str, float]:
    return {d: v["accuracy"] for d, v in report["domains"].items()}


def test_pretrain_eval_equals_the_best_mean_epochs_validation(tmp_path, tmp_path_factory):
    run_dir = copy_of(pretrained_run(tmp_path_factory), tmp_path)
    summary = read_json(run_dir / "summary.json")
    best_epoch = summary["best_epoch"]["mean"]

    report = evaluate_run(run_dir, "val")

    assert accuracies(report) == {"animals": summary["best"]["animals"]}
    assert accuracies(report) == val_events(run_dir)[best_epoch]
    assert report["mean_accuracy"] == summary["best"]["mean"]
    assert read_json(run_dir / "eval.json") == report
    assert not (run_dir / "results.json").exists()  # only the test split is a submission


def test_adapt_eval_equals_each_domains_best_epoch(tmp_path, tmp_path_factory):
    run_dir = copy_of(adapted_run(tmp_path_factory), tmp_path)
    summary = read_json(run_dir / "summary.json")
    events = val_events(run_dir)

    report = evaluate_run(run_dir, "val")

    got = accuracies(report)
    assert sorted(got) == ["animals", "digits", "textures"]
    for domain in ("digits", "textures"):
        assert got[domain] == summary["best"][domain]
        assert got[domain] == events[summary["best_epoch"][domain]][domain]
    # the source domain is the pretrained model's, untouched by adaptation
    assert (
        got["animals"]
        == read_json(pretrained_run(tmp_path_factory) / "summary.json")["best"]["animals"]
    )


def test_eval_of_chosen_domains_only(tmp_path, tmp_path_factory):
    run_dir = copy_of(adapted_run(tmp_path_factory), tmp_path)
    report = evaluate_run(run_dir, "val", domains=["textures"])
    assert list(report["domains"]) == ["textures"]
    assert report["domains"]["textures"]["images"] == 6  # 3 classes x 2 validation images


def test_eval_with_bn_reestimation_leaves_the_saved_model_untouched(tmp_path, tmp_path_factory):
    run_dir = copy_of(pretrained_run(tmp_path_factory), tmp_path)
    model_files = snapshot_files(run_dir / "model")
    plain = evaluate_run(run_dir, "val")
    report = evaluate_run(run_dir, "val", bn_reestimate=True)
    assert report["domains"]["animals"]["images"] == plain["domains"]["animals"]["images"] == 20
    assert snapshot_files(run_dir / "model") == model_files


def test_eval_of_a_domain_the_model_lacks_names_it_and_the_models_domains(
    tmp_path, tmp_path_factory
):
    run_dir = copy_of(pretrained_run(tmp_path_factory), tmp_path)
    with pytest.raises(ValueError, match="textures") as raised:
        evaluate_run(run_dir, "val", domains=["textures"])
    assert "['animals']" in str(raised.value)
    assert not (run_dir / "eval.json").exists()


def test_eval_of_a_domain_the_data_lacks_names_the_valid_ones(tmp_path, tmp_path_factory):
    # a model with a domain the devkit does not hold: the data of another benchmark
    run_dir = copy_of(adapted_run(tmp_path_factory), tmp_path)
    smaller = shutil.copytree(mini_root(tmp_path_factory), tmp_path / "smaller")
    for path in (smaller / "annotations").glob("textures_*"):
        path.unlink()
    benchmark = read_json(smaller / "benchmark.json")
    del benchmark["domains"]["textures"]
    (smaller / "benchmark.json").write_text(json.dumps(benchmark))
    with pytest.raises(ValueError, match="textures") as raised:
        evaluate_run(run_dir, "val", data_root=smaller, domains=["textures"])
    assert "animals, digits" in str(raised.value)
    # without --domains: the model's domains that the data holds
    report = evaluate_run(run_dir, "val", data_root=smaller)
    assert sorted(report["domains"]) == ["animals", "digits"]


def test_eval_of_a_folder_without_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished model") as raised:
        evaluate_run(tmp_path, "val")
    assert "--resume" in str(raised.value)


def test_evaluations_sharing_kept_images_give_the_same_reports_and_decode_each_file_once(
    tmp_path_factory, tmp_path, monkeypatch
):
    """A compare evaluates every run on one test split with ``kept_images``: the reports and
    the submissions are those of evaluations on their own, and a file is decoded once."""
    from multidomain.data import dataset as dataset_module

    runs = [pretrained_run(tmp_path_factory), adapted_run(tmp_path_factory)]
    alone = [evaluate_run(run, "test", out=tmp_path / f"alone{i}") for i, run in enumerate(runs)]
    decoded = []
    load = dataset_module.load_rgb
    monkeypatch.setattr(dataset_module, "load_rgb", lambda path: decoded.append(path) or load(path))
    kept: dict = {}
    shared = [
        evaluate_run(run, "test", out=tmp_path / f"kept{i}", kept_images=kept)
        for i, run in enumerate(runs)
    ]
    assert shared == alone
    for i in range(len(runs)):
        assert (tmp_path / f"kept{i}" / "results.json").read_bytes() == (
            tmp_path / f"alone{i}" / "results.json"
        ).read_bytes()
    assert decoded and len(decoded) == len(set(decoded))  # the adapted run re-reads none
