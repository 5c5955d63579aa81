"""The offline mini-decathlon: devkit format, determinism, resumability, its sources."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import time

import numpy as np
import pytest

from data_helpers import run_cli
from multidomain.data.benchmark import load_benchmark
from multidomain.data.check import check_tree
from multidomain.data.dataset import DecathlonDataset
from multidomain.data.devkit import ID_STRIDE, read_json
from multidomain.data.offline import DOMAIN_SPECS, SOURCE_DOMAIN, animals, fashion, textures
from multidomain.data.offline.builder import COMPLETE_MARKER, prepare_offline

SMALL = {"max_per_class": 3, "seed": 0}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return prepare_offline(tmp_path_factory.mktemp("mini") / "tree", **SMALL)


def _tree_bytes(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_build_has_the_devkit_layout_and_at_least_six_domains(built):
    benchmark = load_benchmark(built)
    assert len(benchmark.domains) >= 6
    assert SOURCE_DOMAIN == "animals" and benchmark.source_domain == "animals"
    for index, name in enumerate(sorted(benchmark.domains)):
        for split in ("train", "val", "test", "test_stripped"):
            assert (built / "annotations" / f"{name}_{split}.json").is_file()
        doc = read_json(built / "annotations" / f"{name}_train.json")
        assert all(img["file_name"].startswith(f"data/{name}/") for img in doc["images"])
        assert {img["id"] // ID_STRIDE for img in doc["images"]} == {index + 1}
        assert {c["id"] - ID_STRIDE * (index + 1) for c in doc["categories"]} == set(
            range(1, benchmark.domain(name).num_classes + 1)
        )
        assert benchmark.domain(name).baseline_accuracy is None
    assert check_tree(built).ok


def test_splits_are_disjoint_and_class_balanced(built):
    for name in load_benchmark(built).domains:
        ids, per_class = set(), {}
        for split in ("train", "val", "test"):
            doc = read_json(built / "annotations" / f"{name}_{split}.json")
            split_ids = {img["id"] for img in doc["images"]}
            assert not ids & split_ids
            ids |= split_ids
            counts = np.bincount([a["category_id"] % ID_STRIDE for a in doc["annotations"]])
            per_class[split] = set(counts[1:].tolist())
        assert all(len(counts) == 1 for counts in per_class.values()), (name, per_class)
        stripped = read_json(built / "annotations" / f"{name}_test_stripped.json")
        assert stripped["annotations"] == [] and stripped["images"]


def test_pycocotools_reads_the_annotations(built):
    from pycocotools.coco import COCO  # a required test extra (pyproject [test])

    coco = COCO(str(built / "annotations" / "digits_train.json"))
    image_ids = coco.getImgIds()
    assert len(image_ids) == len(coco.getAnnIds(imgIds=image_ids)) > 0
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [str(d) for d in range(10)]


def test_dataset_reads_the_build_with_its_policy(built):
    digits = DecathlonDataset(built, "digits", "train")
    animal = DecathlonDataset(built, "animals", "train")
    assert digits[0][0].shape == (3, 72, 72)  # digit-like: center crop
    assert animal[0][0].shape == (3, 64, 64)  # objects: random crop 64
    assert digits.num_classes == 10 and min(digits.labels) >= 0


def test_two_builds_with_one_seed_are_byte_identical(built, tmp_path):
    again = prepare_offline(tmp_path / "again", **SMALL)
    first, second = _tree_bytes(built), _tree_bytes(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    other = prepare_offline(tmp_path / "other", max_per_class=3, seed=1, domains=["digits"])
    assert (other / "annotations" / "digits_train.json").read_bytes() != first[
        "annotations/digits_train.json"
    ]


def test_second_call_reuses_a_complete_tree(tmp_path):
    root = prepare_offline(tmp_path / "t", max_per_class=3, domains=["faces", "digits"])
    stamp = (root / "benchmark.json").stat().st_mtime_ns
    start = time.perf_counter()
    prepare_offline(root, max_per_class=3, domains=["faces", "digits"])
    assert time.perf_counter() - start < 0.5
    assert (root / "benchmark.json").stat().st_mtime_ns == stamp


def test_a_tree_without_its_marker_is_refused_not_rebuilt(tmp_path):
    # issue 8: without its build record the tree is the user's (a copy, say): never deleted
    root = prepare_offline(tmp_path / "t", max_per_class=3, domains=["faces"])
    (root / COMPLETE_MARKER).unlink()
    (root / "data" / "faces" / "train").rename(root / "data" / "faces" / "lost")
    with pytest.raises(ValueError, match="no build record"):
        prepare_offline(root, max_per_class=3, domains=["faces"])
    assert not (root / COMPLETE_MARKER).exists()
    assert any((root / "data" / "faces" / "lost").iterdir())


def test_a_foreign_folder_is_never_overwritten(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        prepare_offline(tmp_path, max_per_class=3, domains=["faces"])
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_cli_prepare_offline(tmp_path, monkeypatch, capsys):
    argv = ["data", "prepare-offline", "--version", "1", "--out", str(tmp_path / "m")]
    argv += ["--max-per-class", "3"]
    assert run_cli([*argv, "--domains", "letters"], monkeypatch) == 0
    assert "mini-decathlon ready" in capsys.readouterr().out
    assert run_cli([*argv, "--domains", "nope"], monkeypatch) == 2
    assert "choose from animals" in capsys.readouterr().err
    assert run_cli([*argv[:-1], "2"], monkeypatch) == 2
    assert "at least 3" in capsys.readouterr().err


def test_domain_specs_are_sorted_and_unique():
    names = [spec.name for spec in DOMAIN_SPECS]
    assert names == sorted(set(names))
    assert max(DOMAIN_SPECS, key=lambda s: s.per_class * 10).name == SOURCE_DOMAIN


def test_animal_unpickler_refuses_anything_but_arrays():
    payload = pickle.dumps(print)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing builtins\.print"):
        animals._ArrayUnpickler(io.BytesIO(payload)).load()
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(animals._ArrayUnpickler(io.BytesIO(pickle.dumps(array))).load(), array)


def test_gimp_pattern_reader(tmp_path):
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    name = b"Stone\x00"
    header = struct.pack(">5I", 24 + len(name), 1, 5, 4, 3) + b"GPAT" + name
    (tmp_path / "stone.pat").write_bytes(header + pixels.tobytes())
    assert np.array_equal(textures.read_pat(tmp_path / "stone.pat"), pixels)
    patch = textures.cut_patch(
        textures.read_pat(tmp_path / "stone.pat"), 72, np.random.default_rng(0)
    )
    assert patch.shape == (72, 72, 3)
    (tmp_path / "bad.pat").write_bytes(b"\x00" * 40)
    with pytest.raises(ValueError, match="not a GIMP pattern"):
        textures.read_pat(tmp_path / "bad.pat")


def test_fashion_reads_idx_files_and_is_optional(tmp_path):
    assert fashion.load(np.random.default_rng(0), 2, 72, folder=tmp_path) is None
    images = np.arange(20 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(20, 28, 28)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 2)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\x00" * 16 + images.tobytes())
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(b"\x00" * 8 + labels.tobytes())
    src = fashion.load(np.random.default_rng(0), 1, 72, folder=tmp_path)
    assert src.images.shape == (10, 72, 72) and sorted(src.labels.tolist()) == list(range(10))
