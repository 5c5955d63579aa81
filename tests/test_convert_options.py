"""The converter's options, domains, packs, CLI, engine training and its errors on bad input
(a network with grouped but no depthwise convolutions, CondConv2d, an unknown layer type, a
domain name that collides with a module name)."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from convert_helpers import NUM_CLASSES, assert_mixed_equals_per_domain, images, original, timm
from engine_helpers import mini_root, tiny_config
from multidomain.cli import main
from multidomain.convert import ConvertConfig, convert, load_network_weights
from multidomain.engine.train import run_training
from multidomain.errors import ConfigError, DataError
from multidomain.metrics.params import count_parameters
from multidomain.models import ModelConfig, build_model
from multidomain.models.packs import domain_state_dict, load_domain, load_model, save_domain

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = "torchvision:mobilenet_v3_small"


def logits(model, x, domain=None):
    with torch.no_grad():
        return model(x) if domain is None else model(x, domain)


def own(model, domain="a") -> int:
    report = count_parameters(model)
    return report.per_domain[domain] - report.heads[domain]


def test_se_and_the_hidden_classifier_layer_are_shared_unless_asked_for():
    network = original(SMALL)
    se = sum(
        p.numel()
        for m in network.modules()
        if type(m).__name__ == "SqueezeExcitation"
        for p in m.parameters()
    )
    hidden = network.classifier[0]
    assert isinstance(hidden, nn.Linear) and hidden.out_features == 1024
    base = convert(network, {"a": 10})
    with_se = convert(network, {"a": 10}, ConvertConfig(own_se=True))
    with_hidden = convert(network, {"a": 10}, ConvertConfig(own_classifier_hidden=True))
    assert own(with_se) == own(base) + se
    report = count_parameters(with_hidden)
    assert report.heads["a"] == count_parameters(base).heads["a"] + 576 * 1024 + 1024
    x = images()
    for model in (with_se, with_hidden):  # still the original's function
        torch.testing.assert_close(
            logits(model.eval(), x, "a"), logits(network, x), atol=1e-5, rtol=0
        )
    assert with_se.config.source_options == {"own_se": True, "own_classifier_hidden": False}


def test_methods_and_the_last_pointwise_option():
    network = original(SMALL)
    pointwise = sum(
        p.numel()
        for m in network.modules()
        if isinstance(m, nn.Conv2d)
        and m.kernel_size == (1, 1)
        and m.groups == 1
        and not any(
            m is c
            for s in network.modules()
            if type(s).__name__ == "SqueezeExcitation"
            for c in s.modules()
        )
        for p in m.parameters()
    )
    base = own(convert(network, {"a": 10}))
    assert own(convert(network, {"a": 10}, ConvertConfig(method="all"))) < base
    last = convert(network, {"a": 10}, ConvertConfig(method_options={"own_last_pointwise": True}))
    assert own(last) == base + 96 * 576  # features[-1]: 1x1 conv 96 -> 576, no bias
    depthwise = convert(network, {"a": 10}, ConvertConfig(method="depthwise"))
    depthwise_params = sum(
        p.numel()
        for m in network.modules()
        if isinstance(m, nn.Conv2d) and m.groups > 1
        for p in m.parameters()
    )
    assert own(depthwise) == base - depthwise_params + pointwise
    with pytest.raises(ConfigError, match="supports"):
        ConvertConfig(method="adapters")


def test_domains_come_and_go_and_packs_load_under_another_name(tmp_path):
    model = convert(original(SMALL), {"a": NUM_CLASSES}).eval()
    model.add_domain("b", 4, init_from="a")
    x = images()
    a, b = domain_state_dict(model, "a"), domain_state_dict(model, "b")
    copied = [k for k in a if not k.startswith(f"network.{model.head_path}.")]
    assert copied and all(torch.equal(a[k], b[k]) for k in copied)  # b starts as a copy of a
    assert logits(model, x, "b").shape == (2, 4)
    save_domain(model, "a", tmp_path / "a.safetensors")
    other = convert(original(SMALL), {"c": 3}).eval()
    load_domain(other, tmp_path / "a.safetensors", name="renamed")
    torch.testing.assert_close(logits(other, x, "renamed"), logits(model, x, "a"))
    model.remove_domain("b")
    assert list(model.domains) == ["a"]
    assert not any("b" in container for _, container in model.per_domain_modules())


def test_a_new_domain_from_scratch_gets_fresh_norms_and_depthwise_kernels():
    model = convert(original(SMALL), {"a": NUM_CLASSES})
    model.add_domain("b", 3)  # no init_from
    norm = next(c for _, c in model.per_domain_modules() if isinstance(c["a"], nn.BatchNorm2d))
    assert torch.equal(norm["b"].weight, torch.ones_like(norm["b"].weight))
    assert not torch.equal(norm["a"].weight, norm["b"].weight)


def test_mixed_depthwise_and_same_padding_convolutions_of_timm():
    """tf_mixnet_s: MixedConv2d (one depthwise conv per kernel size) and Conv2dSame."""
    network = original("timm:tf_mixnet_s")
    kinds = {type(m).__name__ for m in network.modules()}
    assert {"MixedConv2d", "Conv2dSame"} <= kinds
    model = convert(network, {"a": NUM_CLASSES, "b": 3}).eval()
    x = images(4)
    torch.testing.assert_close(logits(model, x, "a"), logits(network, x), atol=1e-5, rtol=0)
    assert_mixed_equals_per_domain(model, x, ["a", "b", "a", "b"])


def test_a_network_with_grouped_but_no_depthwise_convolutions_is_refused():
    with pytest.raises(ConfigError, match=r"RegNet has no depthwise.*trunk_output\..*grouped, not"):
        convert(torchvision.models.regnet_y_400mf(), {"svhn": 3})


def test_condconv_is_refused_by_name():
    network = nn.Sequential(
        nn.Conv2d(8, 8, 3, groups=8),
        timm.layers.CondConv2d(8, 8, 1, num_experts=2),
        nn.Flatten(),
        nn.LazyLinear(3),
    )
    with pytest.raises(ConfigError, match=r"cannot convert 1 \(CondConv2d\).*without CondConv"):
        convert(network, {"a": 3})


def test_a_layer_with_parameters_of_unknown_purpose_is_refused():
    network = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.PReLU(), nn.Flatten(), nn.Linear(8, 3))
    with pytest.raises(ConfigError, match=r"cannot convert 1 \(PReLU\).*\['weight'\]"):
        convert(network, {"a": 3})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("features", "collides with the module features of the network"),
        ("block", r"collides with the module features\.1\.block"),
        ("train", "collides with the attribute 'train'"),
    ],
)
def test_a_domain_name_that_collides_with_a_module_name_is_refused(name, message):
    with pytest.raises(ConfigError, match=message):
        convert(original(SMALL), {name: 3})
    model = convert(original(SMALL), {"a": 3})
    with pytest.raises(ConfigError, match=message):
        model.add_domain(name, 3)


def test_unknown_sources_and_options_are_named():
    with pytest.raises(ConfigError, match="unknown torchvision model 'mobilenet_v9'"):
        build_model(ModelConfig(source="torchvision:mobilenet_v9", domains={"a": 2}))
    with pytest.raises(ConfigError, match="unknown timm model"):
        build_model(ModelConfig(source="timm:not_a_net", domains={"a": 2}))
    with pytest.raises(ConfigError, match=r"has no option \['own_bn'\]"):
        ModelConfig(source=SMALL, domains={"a": 2}, source_options={"own_bn": True})
    with pytest.raises(ConfigError, match="takes none"):
        ModelConfig(domains={"a": 2}, source_options={"own_se": True})
    with pytest.raises(ConfigError, match="leave width at 1.0"):
        build_model(ModelConfig(source=SMALL, domains={"a": 2}, width=0.5))


def test_a_network_of_your_own_saves_but_names_the_way_to_load_it(tmp_path):
    network = nn.Sequential(
        nn.Conv2d(3, 8, 3, groups=1),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, groups=8),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )
    model = convert(network, {"a": 3})
    assert model.config.source == "module:Sequential"
    from multidomain.models.packs import save_model

    save_model(model, tmp_path / "m")
    with pytest.raises(ConfigError, match="convert your network again"):
        load_model(tmp_path / "m")


def test_network_weights_load_from_safetensors_or_a_plain_state_dict(tmp_path):
    network = original(SMALL)
    save_file(
        {k: v.contiguous() for k, v in network.state_dict().items()},
        str(tmp_path / "w.safetensors"),
    )
    torch.save(network.state_dict(), tmp_path / "w.pth")
    torch.save({"model": nn.Linear(2, 2)}, tmp_path / "pickled.pth")  # a module: unpickling
    for name in ("w.safetensors", "w.pth"):
        fresh = torchvision.models.mobilenet_v3_small(num_classes=NUM_CLASSES)
        load_network_weights(fresh, tmp_path / name)
        assert all(torch.equal(v, network.state_dict()[k]) for k, v in fresh.state_dict().items())
    with pytest.raises(DataError, match="not a plain state dict"):
        load_network_weights(torchvision.models.mobilenet_v3_small(), tmp_path / "pickled.pth")


def test_convert_cli_prints_the_accounting(capsys):
    assert main(["convert", "--model", SMALL, "--domains", "svhn:10,dtd:47", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == SMALL and report["method"] == "pointwise"
    # one domain's depthwise convs (58.6k, PAPER.md section 9) and norms, heads apart
    assert report["per_domain"]["svhn"] - report["heads"]["svhn"] == 70_696
    assert report["heads"] == {"svhn": 1024 * 10 + 10, "dtd": 1024 * 47 + 47}
    assert main(["convert", "--model", "torchvision:regnet_y_400mf", "--domains", "svhn:2"]) == 2
    assert "grouped, not depthwise" in capsys.readouterr().err


def test_the_engine_trains_a_converted_source(tmp_path_factory):
    root = mini_root(tmp_path_factory)
    config = tiny_config(
        root, f"model.source={SMALL}", "model.width=1.0", "run.bn_guard=true", epochs=1
    )
    run_dir = tmp_path_factory.mktemp("convert") / "run"
    run_training(config, run_dir)
    model = load_model(run_dir / "model")
    assert model.config.source == SMALL and list(model.domains) == ["animals"]
    assert torch.isfinite(logits(model.eval(), torch.randn(2, 3, 20, 20), "animals")).all()
