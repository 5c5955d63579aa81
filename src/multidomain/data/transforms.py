"""Per-domain image transforms of the official recipe (PAPER.md section 4).

Crop policies (no horizontal flips anywhere):

- ``random_crop``: random crop ``crop_size`` (64) in training, center crop ``image_size`` (72)
  at test;
- ``center_crop``: center crop ``image_size`` in training and at test (gtsrb, omniglot, svhn and
  digit-like mini-domains);
- ``none``: the image as stored (daimlerpedcls, 72x144).

Then conversion to a float tensor in [0, 1] and the domain's RGB normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision.transforms import v2

from multidomain.data.benchmark import CROP_POLICIES, Benchmark, DomainInfo


def build_transform(
    crop: str,
    train: bool,
    mean: Sequence[float],
    std: Sequence[float],
    image_size: int = 72,
    crop_size: int = 64,
) -> Callable:
    """The transform of one crop policy, from a PIL RGB image to a normalised (3, H, W) tensor.

    Args:
        crop: one of ``random_crop``, ``center_crop``, ``none``.
        train: training (random crop) or evaluation.
        mean: per-channel mean (RGB, in [0, 1]).
        std: per-channel standard deviation.
        image_size: the evaluation crop (the stored shorter side).
        crop_size: the training crop of the ``random_crop`` policy.

    Raises:
        ValueError: for an unknown policy, naming the valid ones.
    """
    if crop not in CROP_POLICIES:
        raise ValueError(f"unknown crop policy {crop!r}: choose one of {', '.join(CROP_POLICIES)}")
    steps: list[Callable] = []
    if crop == "random_crop" and train:
        steps.append(v2.RandomCrop(crop_size))
    elif crop != "none":
        steps.append(v2.CenterCrop(image_size))
    steps += [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]
    return v2.Compose(steps)


def domain_transform(benchmark: Benchmark, domain: str, train: bool) -> Callable:
    """The recipe transform of ``domain`` of ``benchmark`` (its crop policy and mean/std)."""
    info: DomainInfo = benchmark.domain(domain)
    return build_transform(
        info.crop,
        train,
        info.mean,
        info.std,
        image_size=benchmark.image_size,
        crop_size=benchmark.crop_size,
    )
