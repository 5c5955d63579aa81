"""Residual adapters on the standard ResNet-26 (issue 10, PAPER.md section 7): the placement of
the official code, parameter counts derived from the layer shapes, conversion of a pretrained
plain network, and exactly the declared parameters training for every method."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import images, tiny_model
from multidomain.layers import Route, routing
from multidomain.layers.adapters import ParallelAdapterConv, SeriesAdapterConv
from multidomain.metrics.params import count_parameters
from multidomain.models import create_model
from multidomain.models.reshare import reshare
from multidomain.models.roles import named_parameter_info

pytestmark = pytest.mark.usefixtures("one_thread")

# (in, out) of the 25 3x3 convs of resnet26_std at width 1: the stem, then each stage's first
# conv from the previous width and its seven others at the stage's width
STD_CONVS = [(3, 32)]
for previous, width in ((32, 64), (64, 128), (128, 256)):
    STD_CONVS += [(previous, width)] + [(width, width)] * 7


def per_domain_extra(method: str) -> int:
    """What ``method`` adds to a domain over BN adaptation (``all``), from the counts."""
    domains = {"source": 1000, "target": 10}
    with torch.device("meta"):
        base = count_parameters(create_model("resnet26_std", domains, "all"))
        adapted = count_parameters(create_model("resnet26_std", domains, method))
    assert adapted.shared == base.shared  # the 3x3 convs stay shared
    extra = {d: adapted.per_domain[d] - base.per_domain[d] for d in domains}
    assert extra["source"] == extra["target"]
    return extra["target"]


def test_series_adapter_parameters_match_the_layer_shapes():
    assert len(STD_CONVS) == 25
    # per conv: a planes x planes 1x1 conv and BN_in (weight and bias)
    expected = sum(out * out + 2 * out for _, out in STD_CONVS)
    assert expected == 696_384
    assert per_domain_extra("series") == expected


def test_parallel_adapter_parameters_match_the_layer_shapes():
    expected = sum(cin * out for cin, out in STD_CONVS)  # an in x out 1x1 conv per conv
    assert expected == 645_216
    assert per_domain_extra("parallel") == expected


def test_series_unit_is_y_plus_adapter_of_bn_in_of_y():
    torch.manual_seed(0)
    unit = SeriesAdapterConv(4, 6, 2, ["a", "b"]).eval()
    with torch.no_grad():
        for module in unit.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
    x = torch.randn(2, 4, 9, 9)
    with routing(Route.for_domain("b", 2)), torch.no_grad():
        out = unit(x)
    adapter = unit.adapter["b"]
    y = F.conv2d(x, unit.weight, None, 2, 1)
    torch.testing.assert_close(out, y + adapter.conv(adapter.bn_in(y)))
    assert out.shape == (2, 6, 5, 5)


def test_parallel_unit_adds_a_strided_1x1_on_the_same_input():
    torch.manual_seed(0)
    unit = ParallelAdapterConv(4, 6, 2, ["a", "b"])
    x = torch.randn(2, 4, 9, 9)
    with routing(Route.for_domain("a", 2)), torch.no_grad():
        out = unit(x)
    expected = F.conv2d(x, unit.weight, None, 2, 1) + F.conv2d(x, unit.adapter["a"].weight, None, 2)
    torch.testing.assert_close(out, expected)
    assert unit.adapter["a"].weight.shape == (6, 4, 1, 1)


@pytest.mark.parametrize("method", ["series", "parallel"])
def test_a_pretrained_plain_network_converts_to_adapters_exactly(method):
    """Converting keeps every domain's function (its adapters start at zero: the Decathlon's
    source domain of the parallel row is the plain network); the shared 3x3 convs are copied."""
    plain = tiny_model("resnet26_std", "all", seed=2).eval()
    adapted = reshare(plain, method).eval()
    assert torch.equal(adapted.stem.weight, plain.stem.weight)
    assert torch.equal(adapted.stages[2][3].conv2.weight, plain.stages[2][3].conv2.weight)
    x = images()
    with torch.no_grad():
        for domain in plain.domains:
            torch.testing.assert_close(adapted(x, domain), plain(x, domain), rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["series", "parallel"])
def test_a_new_domain_gets_fresh_adapters_not_the_sources(method):
    """As in the official code, which copies a new task's 3x3 convs and block BNs from the
    source network but not its adapters: a domain added from another starts with adapters
    initialised like convs (normal(0, sqrt(2 / n)), not at zero), and its own block BNs copied."""
    model = reshare(tiny_model("resnet26_std", "all", seed=2), method)
    unit = model.stages[0][0]
    with torch.no_grad():  # beta's adapters as if trained
        _adapter_weight(model, "beta", method).fill_(0.5)
        unit.bn1["beta"].weight.fill_(3.0)
        if method == "series":
            unit.conv1.adapter["beta"].bn_in.running_var.fill_(4.0)
    model.add_domain("new", 5, init_from="beta")
    weight = _adapter_weight(model, "new", method)
    fan_out = weight.shape[0]
    assert 0.5 < weight.std().item() / (2.0 / fan_out) ** 0.5 < 1.5
    assert torch.equal(unit.bn1["new"].weight, unit.bn1["beta"].weight)  # block BN: copied
    if method == "series":  # the adapter's inner BN starts fresh too
        inner = unit.conv1.adapter["new"].bn_in
        assert torch.equal(inner.running_var, torch.ones_like(inner.running_var))


def _adapter_weight(model, domain: str, method: str) -> torch.Tensor:
    adapter = model.stages[0][0].conv1.adapter[domain]
    return adapter.conv.weight if method == "series" else adapter.weight


# -- each method trains exactly what it declares -----------------------------------------------
CASES = [  # (source, method, optim.train overrides, roles the target trains)
    ("resnet26_dw", "pointwise", [], {"depthwise", "pointwise", "norm", "head"}),
    ("resnet26_dw", "depthwise", [], {"pointwise", "norm", "head"}),
    ("resnet26_dw", "none", [], {"depthwise", "pointwise", "norm", "head"}),
    ("resnet26_dw", "soft", [], {"gate", "pointwise", "norm", "head"}),
    ("resnet26_std", "none", [], {"conv", "norm", "head"}),
    ("resnet26_std", "all", [], {"norm", "head"}),
    ("resnet26_std", "all", ["optim.train_norm=false"], {"head"}),
    ("resnet26_std", "series", [], {"adapter", "norm", "head"}),
    ("resnet26_std", "parallel", [], {"adapter", "norm", "head"}),
]


@pytest.mark.parametrize(("source", "method", "overrides", "roles"), CASES)
def test_adapting_changes_exactly_the_declared_parameters(source, method, overrides, roles):
    from multidomain.engine.builders import build_optimizer, trainable_parameters
    from multidomain.engine.config import load_config

    model = tiny_model(source, method, seed=1)
    config = load_config(
        None,
        [
            "recipe=adapt",
            "model.init=/x",
            "data.domains=[beta]",
            f"model.source={source}",
            f"model.method={method}",
            *overrides,
        ],
    )
    trainable_parameters(model, config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(model, config)
    model.train()
    for step in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(images(seed=step), "beta"), torch.tensor([0, 1, 2, 0])).backward()
        optimizer.step()
    infos = {name: info for name, _, info in named_parameter_info(model)}
    changed = {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}
    declared = {k for k, i in infos.items() if i.domain == "beta" and i.role in roles}
    assert changed & set(infos) == declared
    statistics = changed - set(infos)  # BN running statistics: the target's only
    assert statistics and all(".beta." in k for k in statistics)
