"""``multidomain predict``: mixed-domain lists, per-domain images, bad files."""

from __future__ import annotations

import json

import pytest

from engine_helpers import DOMAINS, adapted_run
from multidomain.cli import main
from multidomain.data.dataset import DecathlonDataset

pytestmark = pytest.mark.usefixtures("one_thread")


def split_images(root, per_domain: int = 6) -> list[tuple[str, str]]:
    """``(image path, domain)`` of the test split, the domains interleaved."""
    files = {d: DecathlonDataset(root, d, "test").file_names[:per_domain] for d in DOMAINS}
    return [(str(root / files[d][i]), d) for i in range(per_domain) for d in DOMAINS]


def write_list(path, rows) -> None:
    path.write_text("image,domain\n" + "".join(f"{image},{domain}\n" for image, domain in rows))


def predict_json(capsys, *args) -> tuple[int, list[dict], str]:
    code = main(["predict", *[str(a) for a in args], "--json", "--device", "cpu"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_a_mixed_list_predicts_what_each_domain_predicts(root, tmp_path, tmp_path_factory, capsys):
    run = adapted_run(tmp_path_factory)
    rows = split_images(root)
    write_list(tmp_path / "list.csv", rows)
    code, mixed, _ = predict_json(
        capsys, "--run", run, "--list", tmp_path / "list.csv", "--batch-size", "8", "--topk", "3"
    )
    assert code == 0
    assert [(r["image"], r["domain"]) for r in mixed] == rows  # input order
    for domain in DOMAINS:
        images = [image for image, d in rows if d == domain]
        code, alone, _ = predict_json(
            capsys, "--run", run, "--domain", domain, *images, "--topk", "3"
        )
        assert code == 0
        ours = [r for r in mixed if r["domain"] == domain]
        for a, b in zip(ours, alone, strict=True):
            assert [c["class"] for c in a["top"]] == [c["class"] for c in b["top"]]
            for ca, cb in zip(a["top"], b["top"], strict=True):
                assert ca["probability"] == pytest.approx(cb["probability"], abs=1e-5)
    dataset = DecathlonDataset(root, "digits", "test")
    names = {c["name"] for c in dataset.categories}
    assert {c["class"] for r in mixed if r["domain"] == "digits" for c in r["top"]} <= names


def test_a_corrupt_image_is_reported_and_the_others_predicted(
    root, tmp_path, tmp_path_factory, capsys
):
    run = adapted_run(tmp_path_factory)
    rows = split_images(root, per_domain=2)
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
    image = split_images(root, per_domain=1)[0][0]
    assert main(["predict", "--run", str(run), "--domain", "svhn", image]) == 2
    assert "no domain 'svhn'; its domains: ['animals', 'digits', 'textures']" in (
        capsys.readouterr().err
    )
