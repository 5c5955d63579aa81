"""Adding and removing domains at run time, and the "adapt domain X" parameter set."""

from __future__ import annotations

import pytest
import torch

from conftest import images, tiny_model
from multidomain.models.packs import domain_state_dict
from multidomain.models.roles import domain_parameters, freeze_for_adaptation, named_parameter_info


def test_new_domain_initialised_from_an_existing_one_shares_its_features():
    model = tiny_model().eval()
    model.add_domain("delta", 4, init_from="beta")
    x = images()
    with torch.no_grad():
        from multidomain.layers import Route

        route_new = Route.for_domain("delta", 4)
        route_old = Route.for_domain("beta", 4)
        torch.testing.assert_close(
            model.forward_features(x, route_new), model.forward_features(x, route_old)
        )
    assert model(x, "delta").shape == (4, 4)
    assert model.config.domains["delta"] == 4


def test_new_domain_from_scratch_is_freshly_initialised():
    model = tiny_model()
    model.add_domain("delta", 2)
    own = domain_state_dict(model, "delta")
    beta = domain_state_dict(model, "beta")
    assert own.keys() == beta.keys()
    depthwise = [k for k in own if k.endswith("conv_dw.weight")]
    assert len(depthwise) == 25  # every separable conv of the network
    assert all(not torch.equal(own[k], beta[k]) for k in depthwise)
    assert model(images(), "delta").shape == (4, 2)


def test_remove_domain_deletes_all_its_tensors():
    model = tiny_model()
    model.remove_domain("beta")
    assert list(model.domains) == ["alpha", "gamma"]
    assert not any(".beta." in f".{k}." for k in model.state_dict())
    with pytest.raises(ValueError, match="unknown domain 'beta'"):
        model(images(), "beta")


def test_cannot_remove_the_last_domain_or_add_twice():
    model = tiny_model()
    model.remove_domain("beta")
    model.remove_domain("gamma")
    with pytest.raises(ValueError, match="only domain"):
        model.remove_domain("alpha")
    with pytest.raises(ValueError, match="already exists"):
        model.add_domain("alpha", 3)


ROLES_ADAPTED = {
    "pointwise": {"depthwise", "norm", "head", "pointwise"},  # pointwise = the last one only
    "depthwise": {"pointwise", "norm", "head"},
    "none": {"depthwise", "pointwise", "norm", "head"},
    "all": {"norm", "head"},
}


@pytest.mark.parametrize("share", sorted(ROLES_ADAPTED))
def test_adaptation_parameters_follow_the_policy(share):
    model = tiny_model(share=share)
    info = {name: i for name, _, i in named_parameter_info(model)}
    adapted = domain_parameters(model, "beta")
    assert {info[name].role for name, _ in adapted} == ROLES_ADAPTED[share]
    assert all(info[name].domain == "beta" for name, _ in adapted)
    without_norm = domain_parameters(model, "beta", train_norm=False)
    assert "norm" not in {info[name].role for name, _ in without_norm}


def test_pointwise_policy_owns_only_the_last_pointwise():
    model = tiny_model(share="pointwise")
    own_pw = [n for n, _, i in named_parameter_info(model) if i.role == "pointwise" and i.domain]
    assert own_pw and all(n.startswith("stages.2.3.conv2.conv_pw.") for n in own_pw)
    shared_last = tiny_model(share="pointwise", method_options={"own_last_pointwise": False})
    assert not [
        i for _, _, i in named_parameter_info(shared_last) if i.role == "pointwise" and i.domain
    ]


def test_freeze_for_adaptation_sets_requires_grad_exactly():
    model = tiny_model()
    trainable = freeze_for_adaptation(model, "gamma")
    assert {id(p) for p in trainable} == {id(p) for p in model.parameters() if p.requires_grad}
    assert len(trainable) < len(list(model.parameters()))
