"""The converter on every supported family (torchvision and timm MobileNetV2, MobileNetV3 small
and large, EfficientNet-B0, ConvNeXt-Tiny), randomly initialised, in eval mode unless training:
one domain equals the original, domains are isolated, ``unload()`` gives the original back, only
the declared parameters train, a saved model loads without the network's code, and a mixed batch
equals per-domain passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convert_helpers import (
    FAMILIES,
    assert_mixed_equals_per_domain,
    images,
    original,
    two_domains,
)
from multidomain.convert import ConvertedNet
from multidomain.convert.targets import NORMS, is_depthwise
from multidomain.engine.bn_guard import domain_norms
from multidomain.metrics.params import count_parameters
from multidomain.models.packs import domain_state_dict, load_model, save_model
from multidomain.models.roles import freeze_for_adaptation, named_parameter_info

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(params=FAMILIES)
def source(request) -> str:
    return request.param


def logits(model: nn.Module, x: torch.Tensor, domain=None) -> torch.Tensor:
    with torch.no_grad():
        return model(x) if domain is None else model(x, domain)


def test_one_domain_equals_the_original_and_unload_gives_it_back(source):
    network, model = two_domains(source)
    x = images()
    reference = logits(network, x)
    assert reference.abs().max() > 0.1  # the comparison is not between near-zero outputs
    assert (reference[0] - reference[1]).abs().max() > 0.01  # nor input-independent ones
    torch.testing.assert_close(logits(model, x, "a"), reference, atol=1e-5, rtol=0)

    plain = model.unload("a")
    assert type(plain) is type(network)
    expected = network.state_dict()
    assert list(plain.state_dict()) == list(expected)  # same keys, in the same order
    assert all(torch.equal(v, expected[k]) for k, v in plain.state_dict().items())
    torch.testing.assert_close(logits(plain.eval(), x), reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        logits(model.unload("b").eval(), x), logits(model, x, "b"), atol=1e-5, rtol=0
    )


def test_a_mixed_batch_equals_per_domain_passes(source):
    _, model = two_domains(source)
    x = images(4, seed=3)
    a, b = logits(model, x[[1, 2]], "a"), logits(model, x[[0, 3]], "b")
    assert not torch.allclose(a[:, :5], b, atol=1e-3)  # the domains do differ
    assert_mixed_equals_per_domain(model, x, ["b", "a", "a", "b"])


def test_training_one_domain_leaves_the_other_bit_identical(source):
    _, model = two_domains(source)
    before = {d: {k: v.clone() for k, v in domain_state_dict(model, d).items()} for d in "ab"}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for step in range(2):
        loss = model(images(seed=step), "a").logsumexp(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    b = domain_state_dict(model, "b")
    assert all(torch.equal(b[k], v) for k, v in before["b"].items())  # BN statistics too
    a = domain_state_dict(model, "a")
    assert not all(torch.equal(a[k], v) for k, v in before["a"].items())  # a did train
    batch_norms = [m for m in original(source).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(domain_norms(model, "a")) == len(batch_norms)  # what the BN guard re-estimates


def test_only_the_declared_parameters_train(source):
    network, model = two_domains(source)
    features = next(iter(model.head.values())).fc.in_features
    depthwise = sum(p.numel() for m in network.modules() if is_depthwise(m) for p in m.parameters())
    norms = sum(
        p.numel() for m in network.modules() if isinstance(m, NORMS) for p in m.parameters()
    )
    scales = sum(
        p.numel() for n, p in network.named_parameters() if n.endswith(("layer_scale", "gamma"))
    )
    own = depthwise + norms + scales
    report = count_parameters(model)
    assert report.per_domain == {"a": own + 10 * (features + 1), "b": own + 5 * (features + 1)}
    # one domain with the original's class count costs exactly the original's parameters
    assert report.shared + report.per_domain["a"] == sum(p.numel() for p in network.parameters())

    trainable = freeze_for_adaptation(model, "a")
    assert sum(p.numel() for p in trainable) == report.per_domain["a"]
    frozen = {n: p.clone() for n, p, info in named_parameter_info(model) if info.domain != "a"}
    model.train()
    model(images(), "a").logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in trainable)  # (zero where stochastic depth dropped)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
    torch.optim.SGD(trainable, lr=0.1).step()
    now = dict(model.named_parameters())
    assert all(torch.equal(now[n], p) for n, p in frozen.items())


def test_a_saved_model_loads_without_the_networks_code(source, tmp_path):
    _, model = two_domains(source)
    assert model.config.source == source  # read off the network: no ConvertConfig(source=)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m").eval()  # rebuilt from config.json + safetensors only
    assert isinstance(loaded, ConvertedNet)
    x = images(4)
    for domain in ("a", "b", ["a", "b", "b", "a"]):
        torch.testing.assert_close(logits(loaded, x, domain), logits(model, x, domain))
