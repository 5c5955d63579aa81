"""``multidomain predict``: mixed-domain lists, per-domain images, bad files."""

from __future__ import annotations

import pytest

from deploy_helpers import (
    assert_mixed_list_predicts_per_domain,
    predict_json,
    split_images,
    write_list,
)
from engine_helpers import DOMAINS, adapted_run
from multidomain.cli import main
from multidomain.data.dataset import DecathlonDataset
from multidomain.models.packs import load_model, save_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_mixed_list_predicts_what_each_domain_predicts(root, tmp_path, tmp_path_factory, capsys):
    run = adapted_run(tmp_path_factory)
    mixed = assert_mixed_list_predicts_per_domain(
        capsys, run, split_images(root, DOMAINS), tmp_path / "list.csv"
    )
    dataset = DecathlonDataset(root, "digits", "test")
    names = {c["name"] for c in dataset.categories}
    assert {c["class"] for r in mixed if r["domain"] == "digits" for c in r["top"]} <= names


def test_a_corrupt_image_is_reported_and_the_others_predicted(
    root, tmp_path, tmp_path_factory, capsys
):
    run = adapted_run(tmp_path_factory)
    rows = split_images(root, DOMAINS, per_domain=2)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    rows.insert(2, ("broken.png", "digits"))  # relative: from the list's folder
    rows.append((str(tmp_path / "missing.jpg"), "animals"))
    write_list(tmp_path / "list.csv", rows)
    code, results, err = predict_json(capsys, "--run", run, "--list", tmp_path / "list.csv")
    assert code == 1
    assert "broken.png" in err and "missing.jpg" in err and "2 of 8 images" in err
    failed = [r for r in results if r["error"]]
    assert [r["image"] for r in failed] == [str(tmp_path / "broken.png"), rows[-1][0]]
    assert all(r["top"] for r in results if not r["error"])
    assert len([r for r in results if r["top"]]) == 6


def test_an_unknown_domain_lists_the_models_domains(tmp_path_factory, root, capsys):
    run = adapted_run(tmp_path_factory)
    image = split_images(root, DOMAINS, per_domain=1)[0][0]
    assert main(["predict", "--run", str(run), "--domain", "svhn", image]) == 2
    assert "no domain 'svhn'; its domains: ['animals', 'digits', 'textures']" in (
        capsys.readouterr().err
    )


def test_a_model_saved_without_preprocessing_names_the_fix_and_the_fix_works(
    root, tmp_path, tmp_path_factory, capsys
):
    run = adapted_run(tmp_path_factory)
    trained = load_model(run / "model")
    older = load_model(run / "model")
    older.cards.clear()  # as saved before multidomain saved cards
    save_model(older, tmp_path / "model")
    image = split_images(root, DOMAINS, per_domain=1)[1][0]  # a digits image
    assert main(["predict", "--run", str(tmp_path / "model"), "--domain", "digits", image]) == 2
    err = capsys.readouterr().err
    assert "domain 'digits' has no saved preprocessing" in err
    assert "multidomain domains card --model MODEL digits --data ROOT" in err

    args = ["--model", tmp_path / "model", "digits", "--data", root]
    assert main(["domains", "card", *map(str, args)]) == 0
    assert '"classes": ["0", "1",' in capsys.readouterr().out
    assert load_model(tmp_path / "model").card("digits") == trained.card("digits")
    assert load_model(tmp_path / "model").card("textures").preprocess is None  # untouched
    _, fixed, _ = predict_json(capsys, "--run", tmp_path / "model", "--domain", "digits", image)
    _, original, _ = predict_json(capsys, "--run", run, "--domain", "digits", image)
    assert fixed == original
    assert main(["domains", "card", *map(str, args[:2]), "textures", "--data", str(tmp_path)]) == 2
    assert "no devkit tree" in capsys.readouterr().err
