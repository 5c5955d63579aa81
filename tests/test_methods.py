"""Methods as a concept (the redesign issue): a method is registered by name and supplies the
layers; layers take part in adding and removing domains and declare their roles; a route can be
read from the context. A toy method defined here, with its own layer holding cross-domain
state, is built, trained and grown without any edit to the backbones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import DOMAINS, images, tiny_model
from multidomain.errors import ConfigError
from multidomain.layers import DomainAware, PerDomain, Route, SepConv, current_route, routing
from multidomain.layers.per_domain import declare_role, depthwise_conv, pointwise_conv
from multidomain.models import create_model
from multidomain.models import methods as methods_module
from multidomain.models._registry import register_model
from multidomain.models.methods import ConvRequest, Method, get_method, list_methods
from multidomain.models.roles import domain_parameters, named_parameter_info


def test_the_four_policies_are_registered_methods():
    assert list_methods()[:4] == ["pointwise", "depthwise", "none", "all"]
    assert get_method("pointwise").kinds == ("separable",)
    with pytest.raises(ConfigError, match="unknown method 'gate'.*pointwise"):
        get_method("gate")


def test_a_name_is_registered_once():
    with pytest.raises(ConfigError, match="'pointwise' is already registered"):
        methods_module.register_method(Method("pointwise", get_method("all").make_conv))
    with pytest.raises(ConfigError, match="'resnet26_dw' is already registered"):

        @register_model(default_method="pointwise")
        def resnet26_dw(config):  # a second builder under a taken name
            return None


class DomainScale(nn.Module, DomainAware):
    """A toy layer with cross-domain state: one scale per domain, in one tensor, indexed by the
    domains' order (as a soft-sharing gate holds one output per domain)."""

    def __init__(self, domains) -> None:
        super().__init__()
        self.names = list(domains)
        self.scale = nn.Parameter(torch.ones(len(self.names)))
        declare_role(self, "gate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale[self.names.index(current_route().single)]

    def add_domain(self, name, init_from=None, **domain) -> None:
        value = self.scale[self.names.index(init_from)] if init_from else torch.ones(())
        self.scale = nn.Parameter(torch.cat([self.scale.detach(), value.detach().view(1)]))
        self.names.append(name)

    def remove_domain(self, name) -> None:
        keep = [i for i, n in enumerate(self.names) if n != name]
        self.scale = nn.Parameter(self.scale.detach()[keep])
        self.names.remove(name)


class ScaledSepConv(SepConv):
    """The separable unit with the toy layer after it: the parts keep their paths, so a model
    of another method can be converted to this one (``reshare``)."""

    def __init__(self, conv_dw, conv_pw, domains) -> None:
        super().__init__(conv_dw, conv_pw)
        self.scale = DomainScale(domains)

    def forward(self, x, route=None):
        return self.scale(super().forward(x, route))


def scaled_conv(request: ConvRequest) -> nn.Module:
    cin = request.in_channels
    dw = PerDomain({d: depthwise_conv(cin, request.stride) for d in request.domains})
    pw = pointwise_conv(request.in_channels, request.out_channels)
    return ScaledSepConv(dw, pw, request.domains)


@pytest.fixture
def toy_method(monkeypatch):
    method = Method("scaled", scaled_conv, kinds=("separable",))
    registry = methods_module._METHODS.copy()  # the module's own is restored after the test
    registry.add("scaled", method)
    monkeypatch.setattr(methods_module, "_METHODS", registry)
    return method


def test_a_new_method_needs_no_edit_of_the_backbone(toy_method):
    model = create_model("resnet26_dw", dict(DOMAINS), width=0.125, share="scaled")
    scales = [m for m in model.modules() if isinstance(m, DomainScale)]
    assert len(scales) == 25  # every separable unit got the method's layer
    assert model(images(), "beta").shape == (4, 3)
    roles = {info.role for _, _, info in named_parameter_info(model)}
    assert "gate" in roles  # the declared role is read

    model.add_domain("delta", 4, init_from="beta")
    assert all(s.names == [*DOMAINS, "delta"] and s.scale.shape == (4,) for s in scales)
    assert model(images(), "delta").shape == (4, 4)
    model.remove_domain("alpha")
    assert all(s.names == ["beta", "gamma", "delta"] for s in scales)


def test_declared_roles_win_and_structure_is_the_fallback():
    model = tiny_model()
    infos = {name: info for name, _, info in named_parameter_info(model)}
    assert infos["stages.0.0.conv1.conv_dw.alpha.weight"].role == "depthwise"
    assert infos["stages.0.0.conv1.conv_pw.weight"].role == "pointwise"
    assert infos["head.alpha.fc.weight"].role == "head"
    # a foreign module with no declaration: a BN nested inside it is found by structure
    model.stem_bn["alpha"] = nn.Sequential(nn.BatchNorm2d(model.stem_bn["alpha"].num_features))
    infos = {name: info for name, _, info in named_parameter_info(model)}
    assert infos["stem_bn.alpha.0.weight"].role == "norm"
    assert infos["stem_bn.alpha.0.weight"].domain == "alpha"
    # a declaration can say what structure cannot (a 1x1 conv that a method uses as an adapter)
    declare_role(model.stages[0][0].conv1.conv_pw, "adapter")
    infos = {name: info for name, _, info in named_parameter_info(model)}
    assert infos["stages.0.0.conv1.conv_pw.weight"].role == "adapter"


def test_the_route_can_be_read_from_the_context():
    model = tiny_model().eval()
    x = images()
    expected = model(x, "gamma")
    with model.routing("gamma"):
        features = model.forward_features(x.contiguous(memory_format=torch.channels_last), None)
        assert torch.equal(model.forward_head(features, None), expected)
    with pytest.raises(ConfigError, match="no domain set"):
        model.stem_bn(torch.zeros(1, model.stem_bn["alpha"].num_features, 4, 4))
    with pytest.raises(RuntimeError), model.routing("alpha"):
        raise RuntimeError("inside")
    with pytest.raises(ConfigError):  # restored on the exception: no route leaks out
        current_route()
    with pytest.raises(ValueError, match="unknown domain 'nope'"), model.routing("nope"):
        pass


def test_routing_nests_and_restores():
    outer, inner = Route.for_domain("alpha", 2), Route.for_domain("beta", 2)
    with routing(outer):
        with routing(inner):
            assert current_route() is inner
        assert current_route() is outer


def test_adapting_trains_what_the_target_owns_under_every_method(model_policy):
    name, share = model_policy
    model = tiny_model(name, share)
    owned = {n for n, _ in domain_parameters(model, "beta")}
    for param_name, _, info in named_parameter_info(model):
        assert (param_name in owned) == (info.domain == "beta")


# -- what trains: selected by owner and role ---------------------------------------------------
def train_config(*overrides):
    from multidomain.engine.config import load_config

    return load_config(None, ["recipe=adapt", "model.init=/x", "data.domains=[beta]", *overrides])


def trained(model, config):
    from multidomain.engine.builders import trainable_parameters

    trainable_parameters(model, config)
    return {
        (info.domain, info.role) for _, p, info in named_parameter_info(model) if p.requires_grad
    }


def test_the_recipe_default_is_written_into_the_config():
    assert train_config().optim.train == ["depthwise", "pointwise", "conv", "norm", "head", "other"]
    assert "norm" not in train_config("optim.train_norm=false").optim.train
    from multidomain.engine.config import load_config

    assert load_config(None, ["data.domains=[beta]"]).optim.train == ["all"]  # pretrain


def test_adapt_trains_roles_among_what_the_target_owns():
    model = tiny_model()  # pointwise: beta owns depthwise, its last pointwise, norms, head
    assert trained(model, train_config()) == {
        ("beta", "depthwise"),
        ("beta", "pointwise"),
        ("beta", "norm"),
        ("beta", "head"),
    }
    assert trained(model, train_config("optim.train=[norm, head]")) == {
        ("beta", "norm"),
        ("beta", "head"),
    }
    # shared parameters only when a selector names them
    picked = trained(model, train_config("optim.train=[head, shared.pointwise]"))
    assert picked == {("beta", "head"), (None, "pointwise")}


def test_a_selection_of_nothing_is_refused():
    model = tiny_model(share="all")  # no per-domain convolutions
    with pytest.raises(ConfigError, match=r"selects no parameter.*roles: \["):
        trained(model, train_config("optim.train=[depthwise]"))


def test_weight_decay_per_role_and_per_domain():
    from multidomain.engine.builders import build_optimizer, trainable_parameters

    model = tiny_model()
    config = train_config(
        "optim.weight_decay_per_role={norm: 0.0}", "optim.weight_decay_per_domain={gamma: 0.01}"
    )
    config.data.domains = ["beta", "gamma"]
    trainable_parameters(model, config)
    groups = build_optimizer(model, config).param_groups
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    for _, param, info in named_parameter_info(model):
        if param.requires_grad:
            expected = 0.01 if info.domain == "gamma" else 0.0 if info.role == "norm" else 5e-4
            assert decay[id(param)] == expected, (info, decay[id(param)])


def test_a_method_is_applied_to_a_trained_model_of_another(toy_method):
    from multidomain.models.reshare import reshare

    source = tiny_model(share="pointwise", seed=3)
    result = reshare(source, "scaled", source_domain="alpha")
    scales = [m for m in result.modules() if isinstance(m, DomainScale)]
    assert len(scales) == 25 and all(torch.equal(s.scale, torch.ones(3)) for s in scales)
    # the added layers start as the identity and every other tensor comes from alpha's view
    # (the shared convolutions included), so alpha computes what it computed before
    x = images()
    with torch.no_grad():
        assert torch.allclose(result.eval()(x, "alpha"), source.eval()(x, "alpha"), atol=1e-6)


def test_the_bn_guard_finds_a_domain_norm_nested_anywhere():
    from multidomain.engine.bn_guard import domain_norms

    model = tiny_model()
    before = len(domain_norms(model, "alpha"))
    assert before == 1 + 2 * 12 + 1  # stem, two per block, final
    nested = nn.BatchNorm2d(model.stem_bn["alpha"].num_features)
    model.stem_bn["alpha"] = nn.Sequential(nn.Identity(), nn.Sequential(nested))  # an adapter
    norms = domain_norms(model, "alpha")
    assert len(norms) == before and any(n is nested for n in norms)
    assert all(n not in domain_norms(model, "beta") for n in norms)
