"""Recipe transforms per domain (PAPER.md section 4), protocols and the loader."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from data_helpers import PER_CLASS, make_devkit
from multidomain.data.benchmark import decathlon_benchmark, load_benchmark
from multidomain.data.dataset import DecathlonDataset
from multidomain.data.loader import build_datasets, build_loader, protocol_splits
from multidomain.data.transforms import build_transform, domain_transform


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_devkit(tmp_path_factory.mktemp("devkit"))


@pytest.mark.parametrize(
    ("domain", "train", "shape"),
    [
        ("dtd", True, (3, 64, 64)),  # others: random crop 64 in training
        ("dtd", False, (3, 72, 72)),  # ... center crop 72 at test
        ("svhn", True, (3, 72, 72)),  # gtsrb/omniglot/svhn: center crop 72, no random crop
        ("svhn", False, (3, 72, 72)),
        ("daimlerpedcls", True, (3, 144, 72)),  # daimler: no crop at all
        ("daimlerpedcls", False, (3, 144, 72)),
    ],
)
def test_crop_sizes_per_domain(tree, domain, train, shape):
    split = "train" if train else "test"
    image, _ = DecathlonDataset(tree, domain, split, train=train)[0]
    assert tuple(image.shape) == shape


def test_random_crop_varies_and_center_crop_does_not():
    image = Image.effect_noise((96, 72), 60).convert("RGB")
    mean, std = (0.5,) * 3, (0.25,) * 3
    random = build_transform("random_crop", True, mean, std)
    center = build_transform("center_crop", True, mean, std)
    torch.manual_seed(0)
    crops = [random(image) for _ in range(8)]
    assert any(not torch.equal(crops[0], c) for c in crops[1:])
    assert torch.equal(center(image), center(image))


def test_normalisation_uses_the_domain_mean_and_std():
    benchmark = decathlon_benchmark()
    mean, std = benchmark.domain("svhn").mean, benchmark.domain("svhn").std
    colour = tuple(round(255 * m) for m in mean)
    tensor = domain_transform(benchmark, "svhn", False)(Image.new("RGB", (72, 72), colour))
    for channel in range(3):
        expected = (colour[channel] / 255 - mean[channel]) / std[channel]
        assert torch.allclose(tensor[channel], torch.tensor(expected), atol=1e-5)
    assert tensor.abs().max() < 0.05


def test_bad_crop_policy_names_the_choices():
    with pytest.raises(ValueError, match="random_crop, center_crop, none"):
        build_transform("flip", True, (0.5,) * 3, (0.2,) * 3)


def test_mini_domain_policy_and_stats_come_from_benchmark_json(tmp_path):
    root = make_devkit(tmp_path / "mini", {"glyphs": (2, (72, 72)), "photos": (2, (72, 72))})
    entry = {"num_classes": 2, "mean": [0.1] * 3, "std": [0.3] * 3, "baseline_accuracy": None}
    domains = {
        "glyphs": {**entry, "crop": "center_crop"},
        "photos": {**entry, "crop": "random_crop"},
    }
    (root / "benchmark.json").write_text(json.dumps({"name": "mini", "domains": domains}))
    assert load_benchmark(root).domain("glyphs").mean == (0.1, 0.1, 0.1)
    assert DecathlonDataset(root, "glyphs", "train")[0][0].shape == (3, 72, 72)
    assert DecathlonDataset(root, "photos", "train")[0][0].shape == (3, 64, 64)
    with pytest.raises(ValueError, match="glyphs, photos"):
        DecathlonDataset(root, "svhn-like", "train", benchmark=load_benchmark(root))


def test_protocol_switch():
    assert protocol_splits("train") == (("train",), "val")
    assert protocol_splits("trainval") == (("train", "val"), None)
    with pytest.raises(ValueError, match=r"'train'.*'trainval'"):
        protocol_splits("train+val")


def test_build_datasets_never_validates_on_training_data(tree):
    train, val = build_datasets(tree, "dtd", "train")
    assert val is not None and not set(train.image_ids) & set(val.image_ids)
    trainval, none = build_datasets(tree, "dtd", "trainval")
    assert none is None
    assert len(trainval) == 2 * 3 * PER_CLASS
    assert set(val.image_ids) <= set(trainval.image_ids)


def test_loader_batches_and_seeded_order(tree):
    dataset = DecathlonDataset(tree, "dtd", ("train", "val"))
    orders = []
    for _ in range(2):
        loader = build_loader(dataset, batch_size=4, train=True, workers=0, seed=3)
        batches = list(loader)
        assert len(batches) == len(dataset) // 4  # drop_last in training
        images, labels = batches[0]
        assert images.shape == (4, 3, 64, 64) and labels.dtype == torch.int64
        orders.append(torch.cat([b[1] for b in batches]))
    assert torch.equal(orders[0], orders[1])
    assert (
        not build_loader(dataset, 4, train=False, workers=0).pin_memory or torch.cuda.is_available()
    )


@pytest.mark.parametrize(
    ("crop", "train"),
    [("random_crop", True), ("random_crop", False), ("center_crop", True), ("none", False)],
)
def test_recipe_transform_equals_the_torchvision_pipeline(crop, train):
    from torchvision.transforms import v2

    image = Image.effect_noise((90, 72), 60).convert("RGB")
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    steps = {"random": [v2.RandomCrop(64)], "center": [v2.CenterCrop(72)], "none": []}
    mode = "none" if crop == "none" else ("random" if crop == "random_crop" and train else "center")
    reference = v2.Compose(
        [*steps[mode], v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    )
    ours = build_transform(crop, train, mean, std)
    for seed in range(3):
        torch.manual_seed(seed)
        expected = reference(image)
        torch.manual_seed(seed)
        torch.testing.assert_close(ours(image), expected)
