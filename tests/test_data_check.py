"""``multidomain data check``: each problem it must find, one test each; a clean tree passes."""

from __future__ import annotations

import pytest

from data_helpers import edit_split, make_devkit, read_doc, run_cli, write_image


@pytest.fixture
def tree(tmp_path):
    return make_devkit(tmp_path / "devkit", {"svhn": (2, (72, 72))})


def _check(tree, monkeypatch, capsys):
    code = run_cli(["data", "check", "--root", str(tree)], monkeypatch)
    return code, capsys.readouterr().out


def test_clean_tree_passes_and_prints_counts(tree, monkeypatch, capsys):
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 0, out
    assert "svhn" in out and "0 problem(s)" in out
    assert [line.split() for line in out.splitlines() if line.startswith("svhn")] == [
        ["svhn", "4", "4", "4"]
    ]


def test_missing_image(tree, monkeypatch, capsys):
    name = read_doc(tree / "annotations" / "svhn_train.json")["images"][0]["file_name"]
    (tree / name).unlink()
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 1
    assert f"problem: svhn/train: missing image {name}" in out


def test_unreadable_image(tree, monkeypatch, capsys):
    name = read_doc(tree / "annotations" / "svhn_val.json")["images"][1]["file_name"]
    (tree / name).write_bytes(b"garbage")
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 1
    assert f"problem: svhn/val: unreadable image {name}" in out


def test_label_outside_categories(tree, monkeypatch, capsys):
    edit_split(tree, "train", lambda doc: doc["annotations"][0].update(category_id=99))
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 1
    assert "has label 99 outside the categories" in out


def test_duplicate_image_id(tree, monkeypatch, capsys):
    doc = edit_split(tree, "train", lambda doc: doc["images"][1].update(id=doc["images"][0]["id"]))
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 1
    assert f"problem: svhn/train: duplicate image id {doc['images'][0]['id']} (2 times)" in out


def test_duplicate_image_id_across_splits(tree, monkeypatch, capsys):
    first = read_doc(tree / "annotations" / "svhn_train.json")["images"][0]["id"]

    def reuse(doc):
        doc["images"][0]["id"] = first
        doc["annotations"][0]["image_id"] = first

    edit_split(tree, "val", reuse)
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 1
    assert f"svhn/val: duplicate image id {first} (also in another split)" in out


def test_duplicate_annotation_id(tree, monkeypatch, capsys):
    doc = edit_split(
        tree, "test", lambda doc: doc["annotations"][2].update(id=doc["annotations"][3]["id"])
    )
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 1
    assert f"svhn/test: duplicate annotation id {doc['annotations'][3]['id']}" in out


@pytest.mark.parametrize("bad_name", ["../outside.png", "/etc/passwd", "data/../../x.png"])
def test_file_name_escaping_the_root(tree, monkeypatch, capsys, bad_name):
    write_image(tree.parent / "outside.png", (8, 8), 0)
    edit_split(tree, "train", lambda doc: doc["images"][0].update(file_name=bad_name))
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 1
    assert f"file_name {bad_name!r} escapes the root" in out


def test_empty_split(tree, monkeypatch, capsys):
    edit_split(tree, "val", lambda doc: doc.update(images=[], annotations=[]))
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 1
    assert "problem: svhn/val: empty split" in out


def test_missing_annotation_file(tree, monkeypatch, capsys):
    (tree / "annotations" / "svhn_test.json").unlink()
    (tree / "annotations" / "svhn_test_stripped.json").unlink()
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 1
    assert "problem: svhn/test: missing" in out


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA"])
def test_non_rgb_images_are_info_not_problems(tree, monkeypatch, capsys, mode):
    name = read_doc(tree / "annotations" / "svhn_train.json")["images"][0]["file_name"]
    tif = (tree / name).with_suffix(".tif")
    write_image(tif, (72, 72), 5, mode=mode)
    tif.replace(tree / name)
    code, out = _check(tree, monkeypatch, capsys)
    assert code == 0, out
    assert f"info: svhn/train: {mode} image {name} (loads as RGB)" in out


def test_root_without_annotations_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    code = run_cli(["data", "check", "--root", str(tmp_path)], monkeypatch)
    assert code == 2
    assert "has no annotations/ folder" in capsys.readouterr().err
