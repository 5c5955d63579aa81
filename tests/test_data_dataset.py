"""DecathlonDataset on a tiny devkit tree: labels, ids, splits, RGB conversion, bad images."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from data_helpers import PER_CLASS, make_devkit, read_doc, write_doc, write_image
from multidomain.data.dataset import DecathlonDataset
from multidomain.data.devkit import category_id
from multidomain.data.images import CorruptImageError


@pytest.fixture
def tree(tmp_path):
    return make_devkit(tmp_path / "devkit")


def test_labels_and_ids_follow_the_annotations(tree):
    ds = DecathlonDataset(tree, "svhn", "train")
    doc = read_doc(tree / "annotations" / "svhn_train.json")
    assert ds.image_ids == [img["id"] for img in doc["images"]]
    assert ds.num_classes == 3
    assert ds.category_ids == [category_id(7, c) for c in range(3)]  # svhn is domain 7
    by_image = {ann["image_id"]: ann["category_id"] for ann in doc["annotations"]}
    for i, image_id in enumerate(ds.image_ids):
        assert ds.category_ids[ds.labels[i]] == by_image[image_id]
    image, label = ds[0]
    assert isinstance(image, torch.Tensor) and image.shape[0] == 3
    assert label == ds.labels[0]


def test_class_index_is_position_in_sorted_category_ids(tree):
    path = tree / "annotations" / "svhn_val.json"
    doc = read_doc(path)
    doc["categories"].reverse()  # file order must not matter
    write_doc(path, doc)
    ds = DecathlonDataset(tree, "svhn", "val")
    assert ds.category_ids == sorted(ds.category_ids)
    assert ds.labels[0] == ds.category_ids.index(doc["annotations"][0]["category_id"])


def test_trainval_concatenates_both_splits(tree):
    ds = DecathlonDataset(tree, "dtd", ("train", "val"))
    assert len(ds) == 2 * 3 * PER_CLASS
    assert len(set(ds.image_ids)) == len(ds)


def test_test_split_prefers_labels_then_stripped(tree):
    assert -1 not in DecathlonDataset(tree, "svhn", "test").labels
    (tree / "annotations" / "svhn_test.json").unlink()
    stripped = DecathlonDataset(tree, "svhn", "test")
    assert set(stripped.labels) == {-1} and len(stripped) == 3 * PER_CLASS
    assert stripped.num_classes == 3
    assert stripped[0][1] == -1


def test_grey_cmyk_rgba_load_as_rgb(tree):
    ds = DecathlonDataset(tree, "svhn", "train", transform=lambda image: image)
    for i, mode in enumerate(("L", "CMYK", "RGBA")):
        path = tree / ds.file_names[i]
        write_image(path.with_suffix(".tif"), (72, 72), 1, mode=mode)
        path.with_suffix(".tif").replace(path)
        assert ds[i][0].mode == "RGB"


def test_unknown_split_and_missing_domain_errors(tree):
    with pytest.raises(ValueError, match="train, val, test"):
        DecathlonDataset(tree, "svhn", "training")
    with pytest.raises(FileNotFoundError, match=r"omniglot_train\.json"):
        DecathlonDataset(tree, "omniglot", "train")


def test_corrupt_image_error_names_the_file(tree):
    ds = DecathlonDataset(tree, "svhn", "train")
    bad = tree / ds.file_names[1]
    bad.write_bytes(b"not an image at all")
    with pytest.raises(CorruptImageError, match=ds.file_names[1]):
        ds[1]


def test_skip_bad_counts_and_returns_the_next_good_sample(tree):
    ds = DecathlonDataset(tree, "svhn", "train", skip_bad=True)
    (tree / ds.file_names[1]).write_bytes(b"\x89PNG truncated")
    image, label = ds[1]
    assert label == ds.labels[2]
    assert ds.bad_files == [ds.file_names[1]]
    assert image.shape[0] == 3


@pytest.mark.parametrize("domain", ["svhn", "dtd"])  # center crop; random crop
def test_cached_images_are_decoded_once_and_give_the_same_samples(tree, domain):
    plain = DecathlonDataset(tree, domain, "train")
    cached = DecathlonDataset(tree, domain, "train", cache_images=True)
    for i in range(len(plain)):
        torch.manual_seed(i)  # the training transform's random crop
        expected = plain[i]
        torch.manual_seed(i)
        image, label = cached[i]
        assert torch.equal(image, expected[0]) and label == expected[1]
    for name in cached.file_names:  # a second epoch reads no file
        (tree / name).unlink()
    torch.manual_seed(0)
    again = cached[0][0]
    torch.manual_seed(0)
    assert torch.equal(again, plain.transform(cached.cache[0]))


def test_cache_hands_a_users_transform_pil_images(tree):
    seen = []
    ds = DecathlonDataset(tree, "svhn", "train", transform=seen.append, cache_images=True)
    ds[0], ds[0]
    assert [type(image).__name__ for image in seen] == ["Image", "Image"]
    assert seen[0].tobytes() == seen[1].tobytes()


def test_decoded_bytes_estimates_the_cache_size(tree):
    ds = DecathlonDataset(tree, "svhn", "train")
    width, height = Image.open(tree / ds.file_names[0]).size
    assert ds.decoded_bytes() == 3 * width * height * len(ds)


def test_keep_first_per_class_keeps_a_fixed_subset_in_the_split_order(tree):
    full = DecathlonDataset(tree, "dtd", ("train", "val"), train=False)  # no random crops
    subset = DecathlonDataset(tree, "dtd", ("train", "val"), train=False)
    subset.keep_first_per_class(2)
    expected = []
    for label in range(full.num_classes):
        expected += [i for i, x in enumerate(full.labels) if x == label][:2]
    expected.sort()
    assert subset.image_ids == [full.image_ids[i] for i in expected]
    assert subset.labels == [full.labels[i] for i in expected]
    assert subset.num_classes == full.num_classes and len(subset) == 2 * full.num_classes
    assert torch.equal(subset[1][0], full[expected[1]][0])


def test_a_runs_train_per_class_cuts_its_training_samples_only(tree):
    from multidomain.data.benchmark import load_benchmark
    from multidomain.engine.config import DataConfig
    from multidomain.engine.data_setup import build_samples

    data = DataConfig(root=str(tree), domains=["dtd", "svhn"], train_per_class={"dtd": 1})
    train, val = build_samples(tree, data, load_benchmark(tree), seed=0)
    full_train, full_val = build_samples(
        tree, DataConfig(domains=["dtd", "svhn"]), load_benchmark(tree), 0
    )
    sizes = dict(zip(train.domains, map(len, train.datasets), strict=True))
    full = dict(zip(full_train.domains, map(len, full_train.datasets), strict=True))
    assert sizes == {"dtd": train.datasets[0].num_classes, "svhn": full["svhn"]}
    assert len(val) == len(full_val)  # validation stays whole
