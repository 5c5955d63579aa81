"""Soft sharing (issue 10, PAPER.md section 3): the fast path equals the official loop, a model
converted from a trained ``pointwise`` one computes the same function with one-hot gates,
adding a domain leaves soft domains bit-identical, and exactly the declared parameters train."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import DOMAINS, images, tiny_model
from multidomain.layers import Route, routing
from multidomain.layers.per_domain import PerDomain, depthwise_conv, pointwise_conv
from multidomain.layers.soft_sharing import SoftGate, SoftGates, SoftSepConv
from multidomain.metrics.params import count_parameters
from multidomain.models.packs import load_model, save_model
from multidomain.models.reshare import reshare
from multidomain.models.roles import named_parameter_info

pytestmark = pytest.mark.usefixtures("one_thread")


def soft_layer(channels=8, domains=("src", "a", "b", "c"), stride=1, seed=0) -> SoftSepConv:
    torch.manual_seed(seed)
    banks = PerDomain({d: depthwise_conv(channels, stride) for d in domains})
    gates = SoftGates(channels, domains, domains[0])
    with torch.no_grad():  # sharper gates than the init's ~1/D, so each bank matters
        for gate in gates.values():
            gate.fc2.weight.mul_(5.0)
    return SoftSepConv(banks, pointwise_conv(channels, 2 * channels), gates)


def run_and_grads(layer: SoftSepConv, x: torch.Tensor, route: Route, path: str):
    layer.path = path
    layer.zero_grad()
    x = x.detach().requires_grad_()
    with routing(route):
        out = layer(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}
    return out.detach(), x.grad, grads


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_fast_path_equals_the_loop_forward_and_gradients(stride, channels_last):
    layer = soft_layer(stride=stride)
    x = torch.randn(6, 8, 9, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    # a mixed batch: the ungated source, and two gated targets
    route = Route(segments=(("src", 0, 2), ("a", 2, 3), ("c", 3, 6)))
    fast = run_and_grads(layer, x, route, "fast")
    loop = run_and_grads(layer, x, route, "loop")
    torch.testing.assert_close(fast[0], loop[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(fast[1], loop[1], atol=1e-5, rtol=0)
    assert fast[2].keys() == loop[2].keys()
    assert any("gate.a" in name for name in fast[2]) and any("conv_dw.b" in n for n in fast[2])
    for name in fast[2]:  # sums over every position: within 1e-5 relative to their size
        torch.testing.assert_close(fast[2][name], loop[2][name], atol=1e-5, rtol=1e-5)


def test_a_gate_is_a_per_sample_softmax_over_every_bank():
    layer = soft_layer()
    gate = layer.gate["b"]
    assert set(layer.gate) == {"a", "b", "c"}  # the source domain has no gate
    assert (gate.fc1.in_features, gate.fc1.out_features, gate.fc2.out_features) == (8, 3, 4)
    weights = gate(torch.randn(5, 8, 4, 4), gate.banks())
    assert weights.shape == (5, 4)
    torch.testing.assert_close(weights.sum(1), torch.ones(5))
    assert not torch.allclose(weights[0], weights[1])  # per sample
    stem = SoftGate(3, 10)  # the stem's gate: 3 inputs, a hidden size of 1
    assert stem.fc1.out_features == 1


def soft_from_pointwise(seed=3):
    source = tiny_model(share="pointwise", seed=seed)
    with torch.no_grad():  # "trained": BN statistics away from the init
        for module in source.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    return source, reshare(source, "soft")


def force_one_hot_on_own_bank(model) -> int:
    forced = 0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SoftGates):
                for domain, gate in module.items():
                    own = module.bank_names.index(domain)
                    gate.fc2.weight.zero_()
                    gate.fc2.bias.fill_(float("-inf"))
                    gate.fc2.bias[own] = 0.0
                    forced += 1
    return forced


def test_one_hot_gates_on_the_own_bank_give_the_pointwise_models_logits():
    source, soft = soft_from_pointwise()
    assert force_one_hot_on_own_bank(soft) == 25 * (len(DOMAINS) - 1)  # every conv, stem too
    source.eval(), soft.eval()
    x = images(size=32)
    with torch.no_grad():
        for domain in DOMAINS:
            torch.testing.assert_close(soft(x, domain), source(x, domain), atol=1e-5, rtol=0)


def test_the_official_init_mixes_the_banks_and_the_source_is_untouched():
    source, soft = soft_from_pointwise()
    source.eval(), soft.eval()
    x = images(size=32)
    with torch.no_grad():
        assert torch.equal(soft(x, "alpha"), source(x, "alpha"))  # ungated: its own bank
        assert not torch.allclose(soft(x, "beta"), source(x, "beta"), atol=1e-3)
    gate = soft.stages[2][3].conv2.gate["gamma"]
    weights = gate(torch.randn(4, gate.fc1.in_features, 2, 2), gate.banks())
    assert weights.min() > 0.1 and weights.max() < 0.6  # about 1/D at step 0


def test_adding_a_domain_leaves_every_domain_bit_identical():
    _, model = soft_from_pointwise()
    model.eval()
    x = images(size=32)
    with torch.no_grad():
        before = {d: model(x, d) for d in DOMAINS}
        mixed_before = model(x, ["gamma", "alpha", "beta", "gamma"])
        model.add_domain("delta", 4, init_from="beta")
        for domain in DOMAINS:
            assert torch.equal(model(x, domain), before[domain]), domain
        assert torch.equal(model(x, ["gamma", "alpha", "beta", "gamma"]), mixed_before)
        gate = model.stem.gate["delta"]
        assert gate.banks() == [0, 1, 2, 3]  # the new domain mixes every bank, its own too
        assert model.stem.gate["beta"].banks() == [0, 1, 2]  # the old ones mask the new bank
        assert model(x, "delta").shape == (4, 4)


def test_a_soft_model_saves_and_loads_with_its_masks(tmp_path):
    _, model = soft_from_pointwise()
    model.add_domain("delta", 4, init_from="beta")
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    model.eval(), loaded.eval()
    x = images(size=32)
    with torch.no_grad():
        for domain in [*DOMAINS, "delta"]:
            assert torch.equal(loaded(x, domain), model(x, domain))
    assert loaded.stem.gate["beta"].banks() == [0, 1, 2]


def test_removing_a_domain_and_the_source_is_refused():
    _, model = soft_from_pointwise()
    with pytest.raises(ValueError, match="ungated source domain"):
        model.remove_domain("alpha")
    assert list(model.domains) == list(DOMAINS)  # refused before anything changed
    model.remove_domain("beta")
    assert model.stem.gate["gamma"].fc2.out_features == 2
    assert model(images(), "gamma").shape == (4, 7)


def gate_parameters(channels: int, banks: int) -> int:
    hidden = channels // 4 + 1
    return channels * hidden + hidden + hidden * banks + banks


def test_gate_parameters_match_the_layer_shapes():
    pointwise = count_parameters(tiny_model(share="pointwise"))
    soft = count_parameters(tiny_model(share="soft"))
    assert soft.shared == pointwise.shared
    assert soft.per_domain["alpha"] == pointwise.per_domain["alpha"]  # the source: no gate
    # the separable convs' inputs at width 1/8: the stem's 3, then each stage's first conv
    # takes the previous width (8, 16, 32) and its other seven the stage's (16, 32, 64)
    inputs = [3] + [8] + [16] * 7 + [16] + [32] * 7 + [32] + [64] * 7
    assert len(inputs) == 25
    gates = sum(gate_parameters(c, len(DOMAINS)) for c in inputs)
    for domain in ("beta", "gamma"):
        assert soft.per_domain[domain] - pointwise.per_domain[domain] == gates


def test_adapting_a_soft_model_trains_exactly_the_declared_parameters():
    from multidomain.engine.builders import build_optimizer, trainable_parameters
    from test_methods import train_config

    _, model = soft_from_pointwise()
    config = train_config("model.method=soft")
    assert config.optim.train == ["gate", "norm", "pointwise", "head"]
    trainable_parameters(model, config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = build_optimizer(model, config)
    model.train()
    loss = nn.functional.cross_entropy(model(images(), "beta"), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    infos = {name: info for name, _, info in named_parameter_info(model)}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    declared = {
        k
        for k, info in infos.items()
        if info.domain == "beta" and info.role in ("gate", "norm", "pointwise", "head")
    }
    running = {k for k in changed if k not in infos}  # BN statistics of beta only
    assert changed - running == declared
    assert all(".beta." in k for k in running)
    assert any(".gate.beta." in k for k in declared)
    assert any(k.startswith("stages.2.3.conv2.conv_pw.beta") for k in declared)
