"""Shared fixtures: tiny models (width 1/8, 32x32 inputs), so the suite stays fast on 2 cores."""

from __future__ import annotations

import pytest
import torch

from multidomain.models import create_model, list_models

DOMAINS = {"alpha": 5, "beta": 3, "gamma": 7}
WIDTH = 0.125

# Every (model, share policy) pair the registry can build.
MODEL_POLICIES = [
    ("resnet26_dw", "pointwise"),
    ("resnet26_dw", "depthwise"),
    ("resnet26_dw", "none"),
    ("resnet26_dw", "all"),
    ("resnet26_dw", "soft"),
    ("resnet26_std", "all"),
    ("resnet26_std", "none"),
    ("resnet26_std", "series"),
    ("resnet26_std", "parallel"),
]


def tiny_model(name: str = "resnet26_dw", share: str | None = None, seed: int = 0, **options):
    torch.manual_seed(seed)
    if share is not None:
        options["share"] = share
    options.setdefault("width", WIDTH)
    return create_model(name, dict(DOMAINS), **options)


@pytest.fixture(params=MODEL_POLICIES, ids=lambda p: f"{p[0]}-{p[1]}")
def model_policy(request):
    return request.param


def images(batch: int = 4, size: int = 32, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=generator)


@pytest.fixture(scope="module")
def one_thread():
    """Engine tests: one torch thread (see ``engine_helpers.one_torch_thread``)."""
    from engine_helpers import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture
def root(tmp_path_factory):
    """The session's tiny mini-decathlon devkit tree (engine tests)."""
    from engine_helpers import mini_root

    return mini_root(tmp_path_factory)


def test_every_registered_model_is_covered():
    assert {name for name, _ in MODEL_POLICIES} == set(list_models())
