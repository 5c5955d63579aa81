"""Eval-mode fast paths for mixed batches (``layers.mixed_batch``): the same function as the
general split-and-concatenate path, each layer in one call, never in training mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from multidomain.layers import PerDomain, Route
from multidomain.layers.per_domain import use_fast_mixed

NAMES = ["b", "a", "c", "a", "b", "b"]
DOMAINS = ["a", "b", "c"]


def norms(**options) -> PerDomain:
    """Per-domain batch norms with their own statistics, affine weights and eps."""
    generator = torch.Generator().manual_seed(0)
    modules = {}
    for i, name in enumerate(DOMAINS):
        norm = nn.BatchNorm2d(8, eps=10.0 ** -(3 + i), **options)
        norm.running_mean.normal_(0.0, 2.0, generator=generator)
        norm.running_var.uniform_(0.01, 3.0, generator=generator)
        if norm.weight is not None:
            with torch.no_grad():
                norm.weight.normal_(1.0, 0.5, generator=generator)
                norm.bias.normal_(0.0, 1.0, generator=generator)
        modules[name] = norm
    return PerDomain(modules)


def depthwise(bias: bool) -> PerDomain:
    torch.manual_seed(0)
    return PerDomain(
        {n: nn.Conv2d(8, 8, 3, 2, 1, dilation=1, groups=8, bias=bias) for n in DOMAINS}
    )


def batch(dtype=torch.float32, channels_last=False) -> tuple[torch.Tensor, Route]:
    route = Route.for_samples(NAMES, DOMAINS)
    x = torch.randn(len(NAMES), 8, 7, 7, generator=torch.Generator().manual_seed(1))
    x = x[route.order].to(dtype)  # the model sorts the batch by domain
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), route


def both_paths(layer: PerDomain, x: torch.Tensor, route: Route):
    outputs = []
    for fast in (True, False):
        use_fast_mixed(layer, fast)
        outputs.append(layer(x, route))
    use_fast_mixed(layer, True)  # the default again
    return outputs


def calls_per_domain(layer: PerDomain, x: torch.Tensor, route: Route) -> int:
    """How many times the domains' own modules ran on the batch."""
    calls = []
    hooks = [m.register_forward_pre_hook(lambda *_: calls.append(1)) for m in layer.values()]
    layer(x, route)
    for hook in hooks:
        hook.remove()
    return len(calls)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_eval_batch_norm_is_one_per_sample_affine_equal_to_each_domains_norm(affine, channels_last):
    layer = norms(affine=affine).double().eval()
    x, route = batch(torch.float64, channels_last)
    with torch.no_grad():
        fast, general = both_paths(layer, x, route)
        # the same terms: equal to float64 rounding, each domain with its own eps
        torch.testing.assert_close(fast, general, rtol=1e-12, atol=1e-12)
        assert calls_per_domain(layer, x, route) == 0  # one call, not one per domain
    layer = layer.float()
    with torch.no_grad():
        fast, general = both_paths(layer, x.float(), route)
        torch.testing.assert_close(fast, general, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bias", [True, False])
def test_eval_depthwise_conv_is_one_grouped_conv_equal_to_each_domains_conv(bias):
    layer = depthwise(bias).double().eval()
    x, route = batch(torch.float64)
    with torch.no_grad():
        fast, general = both_paths(layer, x, route)
        torch.testing.assert_close(fast, general, rtol=1e-12, atol=1e-12)
        assert fast.shape == (len(NAMES), 8, 4, 4)
        assert calls_per_domain(layer, x, route) == 0


def test_channels_last_depthwise_conv_keeps_the_general_path():
    """A channels-last batch would need two layout copies for the folded conv: not taken."""
    layer = depthwise(bias=False).eval()
    x, route = batch(channels_last=True)
    with torch.no_grad():
        assert calls_per_domain(layer, x, route) == len(DOMAINS)


def test_training_mode_normalises_each_domain_with_its_own_batch_statistics():
    layer = norms().train()
    reference = norms().train()
    x, route = batch()
    out = layer(x, route)
    assert calls_per_domain(norms().train(), x, route) == len(DOMAINS)
    for name, start, stop in route.segments:
        alone = reference[name](x[start:stop])
        assert torch.equal(out[start:stop], alone)
        assert torch.equal(layer[name].running_mean, reference[name].running_mean)
        assert torch.equal(layer[name].running_var, reference[name].running_var)


def test_eval_fast_path_passes_gradients_to_each_domains_weights():
    """Fine-tuning with frozen statistics (batch norm in eval mode) still trains the weights."""
    grads = []
    for fast in (True, False):
        layer = norms().eval()
        use_fast_mixed(layer, fast)
        x, route = batch()
        (layer(x, route) ** 2).sum().backward()
        grads.append({n: (m.weight.grad, m.bias.grad) for n, m in layer.items()})
    for name in DOMAINS:
        for fast, general in zip(grads[0][name], grads[1][name], strict=True):
            assert fast.abs().sum() > 0
            torch.testing.assert_close(fast, general, rtol=1e-5, atol=1e-5)


def test_timm_batch_norm_act_applies_its_activation():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    layer = PerDomain({n: timm.layers.BatchNormAct2d(8, act_layer=nn.ReLU) for n in DOMAINS}).eval()
    for module in layer.values():
        module.running_mean.normal_(0.0, 1.0)
    x, route = batch()
    with torch.no_grad():
        fast, general = both_paths(layer, x, route)
        assert calls_per_domain(layer, x, route) == 0
    assert (fast >= 0).all() and (fast == 0).any()  # the ReLU ran
    torch.testing.assert_close(fast, general, rtol=1e-6, atol=1e-6)


def test_bfloat16_activations_keep_their_dtype_with_float32_statistics():
    layer = norms().eval()  # float32 statistics and weights
    x, route = batch()
    with torch.no_grad():
        fast, general = both_paths(layer, x.bfloat16(), route)
    assert fast.dtype == general.dtype == torch.bfloat16
    torch.testing.assert_close(fast.float(), general.float(), rtol=2e-2, atol=2e-2)
