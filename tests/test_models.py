"""Model behaviour users rely on: shapes, gradients, isolation, mixed batches, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import DOMAINS, images, tiny_model
from multidomain.models.packs import domain_state_dict


def test_output_shape_per_domain(model_policy):
    model = tiny_model(*model_policy)
    for domain, classes in DOMAINS.items():
        out = model(images(), domain=domain)
        assert out.shape == (4, classes)
        assert torch.isfinite(out).all()


def test_every_trainable_parameter_gets_a_gradient(model_policy):
    model = tiny_model(*model_policy).train()
    names = [d for d in DOMAINS for _ in range(2)]  # a mixed batch covering every domain
    logits = model(images(len(names)), domain=names)
    targets = torch.zeros(len(names), dtype=torch.long)
    F.cross_entropy(logits, targets).backward()
    gate_hidden = []
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        if ".gate." in name and not name.endswith("fc2.bias"):
            # a soft-sharing gate's hidden ReLU (one unit at the stem) may be inactive on every
            # sample of a batch; then both its weights rightly get a zero gradient
            gate_hidden.append(bool(param.grad.abs().sum() > 0))
            continue
        assert param.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
    assert not gate_hidden or sum(gate_hidden) > 0.8 * len(gate_hidden)


def _domain_snapshot(model, domain):
    return {k: v.detach().clone() for k, v in domain_state_dict(model, domain).items()}


@pytest.mark.parametrize("optimizer_over", ["all", "own"])
def test_steps_on_one_domain_leave_others_bit_identical(model_policy, optimizer_over):
    from multidomain.models.roles import domain_parameters

    model = tiny_model(*model_policy).train()
    before = {d: _domain_snapshot(model, d) for d in ("beta", "gamma")}
    params = (
        model.parameters()
        if optimizer_over == "all"
        else [p for _, p in domain_parameters(model, "alpha")]
    )
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step in range(3):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images(seed=step), "alpha"), torch.tensor([0, 1, 2, 3]))
        loss.backward()
        optimizer.step()
    moved = _domain_snapshot(model, "alpha")
    for domain, snapshot in before.items():
        after = _domain_snapshot(model, domain)
        for key, value in snapshot.items():
            assert torch.equal(value, after[key]), f"{domain}: {key} changed"
    assert any(
        not torch.equal(v, moved[k])
        for k, v in _domain_snapshot(tiny_model(*model_policy), "alpha").items()
    ), "the trained domain did not change at all"


def test_mixed_batch_equals_each_sample_alone(model_policy):
    model = tiny_model(*model_policy).eval()
    names = ["gamma", "alpha", "beta", "alpha", "gamma", "beta"]
    x = images(len(names))
    with torch.no_grad():
        mixed = model(x, domain=names)
        for i, name in enumerate(names):
            alone = model(x[i : i + 1], domain=name)[0]
            classes = DOMAINS[name]
            # float32 rounding grows with the logits (series adapters at random init: hundreds)
            scale = max(1.0, float(alone.abs().max()))
            torch.testing.assert_close(mixed[i, :classes], alone, rtol=0, atol=1e-5 * scale)
            assert torch.isneginf(mixed[i, classes:]).all()
            assert mixed[i].argmax() < classes


def test_mixed_batch_of_one_domain_is_the_single_domain_path(model_policy):
    model = tiny_model(*model_policy).eval()
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(model(x, ["beta"] * 4), model(x, "beta"), rtol=0, atol=0)


def test_channels_last_and_contiguous_agree():
    fast = tiny_model(channels_last=True).eval()
    plain = tiny_model(channels_last=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(images(), "alpha"), plain(images(), "alpha"))


def test_unknown_domain_names_the_valid_ones():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"unknown domain 'delta'.*alpha.*beta.*gamma"):
        model(images(), domain="delta")
    with pytest.raises(ValueError, match="unknown domain 'delta'"):
        model(images(2), domain=["alpha", "delta"])


def test_missing_domain_argument_is_explained():
    with pytest.raises(ValueError, match="pass domain=NAME"):
        tiny_model()(images())


@pytest.mark.parametrize(
    "shape", [(4, 32, 32), (4, 1, 32, 32), (4, 32, 32, 3)], ids=["3d", "grey", "nhwc"]
)
def test_wrong_input_shape_is_explained(shape):
    with pytest.raises(ValueError, match=r"expected images of shape \(batch, 3, height, width\)"):
        tiny_model()(torch.zeros(shape), domain="alpha")


def test_one_domain_name_per_sample_is_required():
    with pytest.raises(ValueError, match="got 3 domain names for a batch of 4"):
        tiny_model()(images(), domain=["alpha", "beta", "gamma"])


def test_unknown_model_and_policy_are_explained():
    from multidomain import create_model

    with pytest.raises(ValueError, match=r"unknown model 'resnet26'.*resnet26_dw"):
        create_model("resnet26", {"a": 2})
    with pytest.raises(ValueError, match=r"unknown method 'some'.*pointwise"):
        create_model("resnet26_dw", {"a": 2}, share="some")
    methods = r"\['none', 'all', 'series', 'parallel'\]"
    with pytest.raises(ValueError, match=rf"'pointwise' needs .*separable.*{methods}"):
        create_model("resnet26_std", {"a": 2}, share="pointwise")


def test_training_and_test_sizes_and_odd_sizes_work():
    model = tiny_model().eval()
    for size in (64, 72, 36, 33):
        assert model(images(2, size), "alpha").shape == (2, 5)
