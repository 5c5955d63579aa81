"""Issue 8, section 2: the data root and the data are not trusted blindly.

- the offline builder deletes only files it wrote and can prove it wrote (a build record with
  SHA-256), refuses a foreign folder, and holds the folder's lock while it builds;
- one validation of image paths serves ``data check`` and ``DecathlonDataset``;
- label and image problems are clear ``DataError`` lines before training starts;
- skipped undecodable images are counted per domain.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_helpers import edit_split, make_devkit, read_doc, run_cli, write_doc, write_image
from multidomain.data.benchmark import BENCHMARK_FILE, load_benchmark
from multidomain.data.check import check_tree
from multidomain.data.dataset import DecathlonDataset
from multidomain.data.devkit import file_name_problem
from multidomain.data.images import CorruptImageError, load_rgb
from multidomain.data.offline.builder import (
    BUILDING_MARKER,
    is_complete,
    prepare_offline,
)
from multidomain.engine.batches import SeededSamples
from multidomain.engine.config import DataConfig
from multidomain.engine.data_setup import build_samples, resolve_root, skipped_images
from multidomain.errors import DataError, StorageError
from multidomain.locks import folder_lock

BUILD = {"image_size": 20, "max_per_class": 3, "domains": ["faces"]}


def snapshot(folder):
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def visible_copy(source, target):
    """``cp -r source/* target/``: the hidden build markers stay behind."""
    target.mkdir()
    for entry in source.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            shutil.copytree(entry, target / entry.name)
        else:
            shutil.copy2(entry, target / entry.name)
    return target


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return prepare_offline(tmp_path_factory.mktemp("base") / "tree", **BUILD)


# -- the builder deletes only what it wrote ----------------------------------------------------
def test_a_copy_without_the_build_record_is_refused_and_left_alone(base, tmp_path):
    copy = visible_copy(base, tmp_path / "copy")
    (copy / "data" / "notes.txt").write_text("mine")
    before = snapshot(copy)
    with pytest.raises(DataError, match="no build record") as caught:
        prepare_offline(copy, **BUILD)
    assert "empty folder" in str(caught.value) and "as it is" in str(caught.value)
    assert str(copy) in str(caught.value) and "\n" not in str(caught.value)
    assert snapshot(copy) == before


def test_a_mini_recipe_uses_a_devkit_tree_without_marker_as_it_is(base, tmp_path, caplog):
    copy = visible_copy(base, tmp_path / "copy")
    (copy / "data" / "notes.txt").write_text("mine")
    before = snapshot(copy)
    data = DataConfig(root=str(copy), prepare_offline=True, offline_image_size=36)
    with caplog.at_level(logging.INFO):
        assert resolve_root(data) == copy
    assert snapshot(copy) == before
    assert any("as it is" in record.getMessage() for record in caplog.records)


def test_a_rebuild_keeps_foreign_files_and_rewrites_its_own(base, tmp_path):
    tree = prepare_offline(tmp_path / "t", **BUILD)
    foreign = {
        "notes.txt": b"root note",
        "annotations/mine.json": b"{}",
        "data/faces/train/extra.jpg": b"my own image",
    }
    for name, content in foreign.items():
        (tree / name).write_bytes(content)
    (tree / "data" / "faces" / "train" / "0000001.jpg").unlink(missing_ok=True)
    prepare_offline(tree, force=True, **BUILD)
    after = snapshot(tree)
    for name, content in foreign.items():
        assert after.pop(name) == content
    assert after == snapshot(base)
    assert check_tree(tree).ok


def test_a_rebuild_refuses_when_a_file_it_wrote_was_changed(tmp_path):
    tree = prepare_offline(tmp_path / "t", **BUILD)
    edited = tree / "annotations" / "faces_val.json"
    edited.write_text(edited.read_text().replace("mini-decathlon", "my edit"))
    before = snapshot(tree)
    with pytest.raises(DataError, match=r"annotations/faces_val\.json") as caught:
        prepare_offline(tree, force=True, **BUILD)
    assert "changed" in str(caught.value)
    assert snapshot(tree) == before


def test_an_interrupted_build_is_resumed_replacing_only_its_own_files(base, tmp_path, monkeypatch):
    from multidomain.data.offline import builder

    real, calls = builder._encode_jpeg, []

    def failing(image):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("stopped half-way")
        return real(image)

    monkeypatch.setattr(builder, "_encode_jpeg", failing)
    tree = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        prepare_offline(tree, workers=1, **BUILD)
    assert (tree / BUILDING_MARKER).is_file() and not is_complete(tree)
    monkeypatch.setattr(builder, "_encode_jpeg", real)
    (tree / "data" / "faces" / "mine.txt").write_text("keep")
    # a recipe resumes a half build of ours with the parameters it was started with
    assert resolve_root(DataConfig(root=str(tree), prepare_offline=True, offline_image_size=36))
    assert is_complete(tree, builder._params(**{**BUILD, "seed": 0}))
    assert (tree / "data" / "faces" / "mine.txt").read_text() == "keep"
    prepare_offline(tree, force=True, **BUILD)
    after = snapshot(tree)
    assert after.pop("data/faces/mine.txt") == b"keep"
    assert after == snapshot(base)


def test_a_build_stopped_before_a_rename_is_cleared_by_the_next(tmp_path, monkeypatch):
    from multidomain.data.offline import record

    real, calls = os.replace, []

    def stopping(source, target):
        calls.append(target)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed before the rename")
        real(source, target)

    monkeypatch.setattr(record.os, "replace", stopping)
    tree = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        prepare_offline(tree, workers=1, **BUILD)
    monkeypatch.setattr(record.os, "replace", real)
    stopped = Path(calls[3])
    assert stopped.with_name(f".{stopped.name}.part").is_file() and not stopped.exists()
    prepare_offline(tree, **{**BUILD, "domains": ["letters"]})  # another build in its place
    assert not (tree / "data" / "faces").exists()  # every file of the first, .part included
    assert sorted(p.name for p in (tree / "data").iterdir()) == ["letters"]
    assert check_tree(tree).ok


def test_a_second_builder_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "t"
    with folder_lock(out, "data build"), pytest.raises(StorageError, match="in use"):
        prepare_offline(out, **BUILD)
    assert not (out / "annotations").exists()
    prepare_offline(out, **BUILD)  # the lock file left behind is not a foreign file
    assert is_complete(out) and (out / ".lock").is_file()


def test_a_foreign_folder_error_is_a_data_error(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="empty folder"):
        prepare_offline(tmp_path, **BUILD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_an_unknown_domain_is_a_config_error_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="choose from animals"):
        prepare_offline(tmp_path / "t", image_size=20, max_per_class=3, domains=["nope"])
    assert not (tmp_path / "t").exists()


# -- one validation of image paths ---------------------------------------------------------------
@pytest.fixture
def tree(tmp_path):
    return make_devkit(tmp_path / "devkit", {"svhn": (2, (16, 16))})


def _rename_first(tree, new_name):
    edit_split(tree, "train", lambda doc: doc["images"][0].update(file_name=new_name))


def _assert_refused(tree, *needles):
    with pytest.raises(DataError) as caught:
        DecathlonDataset(tree, "svhn", "train")
    message = str(caught.value)
    assert "\n" not in message
    for needle in (*needles, "svhn_train.json", f"multidomain data check --root {tree}"):
        assert needle in message, message
    report = check_tree(tree)
    assert not report.ok
    return report


@pytest.mark.parametrize(
    ("bad_name", "reason"),
    [
        ("../outside.png", "'..'"),
        ("data/../../outside.png", "'..'"),
        ("/etc/hostname", "absolute"),
        ("", "empty"),
    ],
)
def test_dataset_and_check_refuse_a_file_name_escaping_the_root(tree, bad_name, reason):
    write_image(tree.parent / "outside.png", (8, 8), 0)
    _rename_first(tree, bad_name)
    report = _assert_refused(tree, repr(bad_name), reason)
    assert any(repr(bad_name) in line and reason in line for line in report.problems)


def test_a_symlinked_image_pointing_outside_is_refused(tree):
    write_image(tree.parent / "outside.png", (16, 16), 0)
    (tree / "data" / "svhn" / "train" / "link.png").symlink_to(tree.parent / "outside.png")
    _rename_first(tree, "data/svhn/train/link.png")
    report = _assert_refused(tree, "'data/svhn/train/link.png'", "symbolic link")
    assert any("link.png" in line and "outside" in line for line in report.problems)


def test_a_folder_symlink_pointing_outside_is_refused(tree):
    outside = tree.parent / "elsewhere"
    write_image(outside / "img.png", (16, 16), 0)
    (tree / "data" / "linked").symlink_to(outside, target_is_directory=True)
    _rename_first(tree, "data/linked/img.png")
    _assert_refused(tree, "'data/linked/img.png'", "symbolic link")


def test_a_symlink_inside_the_root_is_fine(tree):
    first = read_doc(tree / "annotations" / "svhn_train.json")["images"][0]["file_name"]
    (tree / "data" / "alias").symlink_to(tree / "data" / "svhn", target_is_directory=True)
    _rename_first(tree, first.replace("data/svhn/", "data/alias/"))
    assert len(DecathlonDataset(tree, "svhn", "train")) == 4
    assert check_tree(tree).ok


def test_file_name_problem_is_the_one_rule(tree):
    assert file_name_problem(tree, "data/svhn/train/00001.jpg") is None
    assert "'..'" in file_name_problem(tree, "data/../x.png")
    assert "absolute" in file_name_problem(tree, "C:\\x.png")
    assert "not a string" in file_name_problem(tree, 7)


# -- labels ----------------------------------------------------------------------------------------
def test_an_image_with_two_different_labels_is_refused(tree):
    def second_label(doc):
        ann = dict(doc["annotations"][0])
        other = next(
            a["category_id"] for a in doc["annotations"] if a["category_id"] != ann["category_id"]
        )
        doc["annotations"].append({**ann, "id": ann["id"] + 1000, "category_id": other})

    doc = edit_split(tree, "train", second_label)
    image = doc["annotations"][0]["image_id"]
    with pytest.raises(DataError, match=f"image {image} has two labels"):
        DecathlonDataset(tree, "svhn", "train")
    assert any(f"image {image} has two labels" in line for line in check_tree(tree).problems)


def test_an_annotation_of_an_unknown_image_is_refused_at_construction(tree):
    doc = edit_split(tree, "train", lambda doc: doc["annotations"][1].update(image_id=123))
    with pytest.raises(DataError, match="names unknown image 123") as caught:
        DecathlonDataset(tree, "svhn", "train")
    assert "svhn_train.json" in str(caught.value)
    unlabelled = doc["images"][1]["id"]
    assert any(f"image {unlabelled} has no annotation" in p for p in check_tree(tree).problems)


def test_a_labelled_image_without_annotation_is_refused(tree):
    doc = edit_split(tree, "val", lambda doc: doc["annotations"].pop(2))
    with pytest.raises(DataError, match=f"image {doc['images'][2]['id']} has no annotation"):
        DecathlonDataset(tree, "svhn", "val")
    assert DecathlonDataset(tree, "svhn", "test").labels  # the labelled test file is intact


def test_num_classes_below_the_category_count_is_refused_before_training(base, tmp_path):
    tree = shutil.copytree(base, tmp_path / "t")
    categories = len(read_doc(tree / "annotations" / "faces_train.json")["categories"])
    path = tree / BENCHMARK_FILE
    content = read_doc(path)
    content["domains"]["faces"]["num_classes"] = small = categories - 1
    write_doc(path, content)
    benchmark = load_benchmark(tree)
    with pytest.raises(DataError, match=f"num_classes={small}.*{categories} categories"):
        DecathlonDataset(tree, "faces", "train", benchmark=benchmark)
    data = DataConfig(root=str(tree), domains=["faces"])
    with pytest.raises(DataError, match="benchmark.json"):
        build_samples(tree, data, benchmark, seed=0)
    assert any(f"num_classes={small}" in line for line in check_tree(tree).problems)


# -- images ------------------------------------------------------------------------------------
def test_a_16_bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 256, 32768], [65535, 1000, 50000]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.frombytes("I;16", (3, 2), values.astype("<u2").tobytes()).save(path)
    with Image.open(path) as raw:
        assert raw.mode in ("I;16", "I")
    image = np.asarray(load_rgb(path))
    expected = np.round(values / 257).astype(np.uint8)
    assert image.shape == (2, 3, 3)
    for channel in range(3):
        assert np.array_equal(image[..., channel], expected)


@pytest.mark.parametrize("limit", [1000, 3500], ids=["error", "warning"])
def test_a_decompression_bomb_is_a_corrupt_image_that_skip_bad_skips(tree, monkeypatch, limit):
    # 16 x 16 images hold 256 pixels, the bomb 6400: above twice 1000 PIL raises, below 7000 warns
    ds = DecathlonDataset(tree, "svhn", "train", transform=np.asarray, skip_bad=True)
    bomb = ds.file_names[1]
    write_image(tree / "bomb.png", (80, 80), 3)
    (tree / "bomb.png").replace(tree / bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no bomb warning escapes either
        with pytest.raises(CorruptImageError, match=bomb.split("/")[-1]):
            load_rgb(tree / bomb)
        _, label = ds[1]
    assert label == ds.labels[2] and ds.bad_files == [bomb]
    assert ds.decoded_bytes() > 0
    assert any(bomb in line for line in check_tree(tree).problems)


def test_corrupt_image_error_is_a_data_error_and_an_os_error():
    assert issubclass(CorruptImageError, DataError) and issubclass(CorruptImageError, OSError)
    assert issubclass(CorruptImageError, ValueError)


def test_skipped_images_counts_per_domain(tmp_path):
    tree = make_devkit(tmp_path / "devkit", {"svhn": (2, (16, 16)), "dtd": (2, (16, 16))})
    datasets = {
        domain: DecathlonDataset(tree, domain, "train", transform=np.asarray, skip_bad=True)
        for domain in ("svhn", "dtd")
    }
    for position in (0, 2):
        (tree / datasets["svhn"].file_names[position]).write_bytes(b"garbage")
    train = SeededSamples(datasets)
    for index in range(len(train)):
        train[(0, index)]
    validation = SeededSamples(
        {"dtd": DecathlonDataset(tree, "dtd", "val", transform=np.asarray, skip_bad=True)}
    )
    assert skipped_images(train, None) == {"svhn": 2, "dtd": 0}
    assert skipped_images(train, validation) == {"svhn": 2, "dtd": 0}


def test_data_check_cli_reports_each_new_problem_on_one_line(tree, monkeypatch, capsys):
    edit_split(tree, "train", lambda doc: doc["annotations"][1].update(image_id=123))
    _rename_first(tree, "../x.png")
    assert run_cli(["data", "check", "--root", str(tree)], monkeypatch) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if "problem:" in line]
    assert any("names unknown image 123" in line for line in problems)
    assert any("'../x.png'" in line and "escapes the root" in line for line in problems)


def test_an_image_smaller_than_the_crop_is_a_data_error_naming_the_file(tmp_path):
    tree = make_devkit(tmp_path / "devkit", {"dtd": (2, (16, 16))})  # dtd: random 64 px crops
    ds = DecathlonDataset(tree, "dtd", "train")
    with pytest.raises(DataError, match=f"{ds.file_names[0]}: image of 16x16 px.*64 px crop"):
        ds[0]
