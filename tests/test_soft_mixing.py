"""Soft sharing's exact forms (issue 10, "Fast and exact"): every form the fast path may pick
equals the official loop over the banks within 1e-5, forward and gradients (input, gate
weights, banks), in both layouts and on both sides of the layout rule that picks the form;
the gate's pooling gives the mean's values bit for bit."""

from __future__ import annotations

import pytest
import torch

from multidomain.layers.per_domain import depthwise_conv
from multidomain.layers.soft_mixing import MIXERS, mix_fast, mix_loop
from multidomain.layers.soft_sharing import SoftGate

pytestmark = pytest.mark.usefixtures("one_thread")
FORMS = sorted(set(MIXERS) - {"loop"})


def inputs(shape, channels_last: bool, stride: int = 1, banks: int = 3, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    n, c = shape[:2]
    x = torch.randn(shape, generator=generator)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weights = torch.randn(n, banks, generator=generator).mul(3).softmax(dim=1)
    torch.manual_seed(seed)
    convs = [depthwise_conv(c, stride) for _ in range(banks)]
    return x, weights, convs


def run_and_grads(mix, x, weights, banks):
    x = x.detach().requires_grad_()
    weights = weights.detach().requires_grad_()
    for bank in banks:
        bank.weight.grad = None
    out = mix(x, weights, banks)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = [x.grad, weights.grad, *(bank.weight.grad for bank in banks)]
    return out.detach(), grads


def assert_equal_to_the_loop(form, x, weights, banks):
    out, grads = run_and_grads(MIXERS[form], x, weights, banks)
    ref_out, ref_grads = run_and_grads(mix_loop, x, weights, banks)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    for grad, ref in zip(grads, ref_grads, strict=True):  # sums over the image: relative too
        torch.testing.assert_close(grad, ref, atol=1e-5, rtol=1e-5)
    return out, grads[0]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("stride", [1, 2])
def test_every_form_equals_the_loop_forward_and_gradients(form, channels_last, stride):
    x, weights, banks = inputs((5, 6, 9, 9), channels_last, stride)
    assert_equal_to_the_loop(form, x, weights, banks)


# both sides of the rule (contiguous -> folded, otherwise folded_channels_last); one sample;
# and tensors on the boundary, contiguous in both layouts at once (one channel; a 1x1 image)
BOUNDARY = [
    ((4, 6, 7, 7), False),
    ((4, 6, 7, 7), True),
    ((1, 6, 7, 7), False),
    ((1, 6, 7, 7), True),
    ((4, 1, 7, 7), True),
    ((4, 6, 1, 1), True),
]


@pytest.mark.parametrize(("shape", "channels_last"), BOUNDARY)
def test_the_fast_path_equals_the_loop_on_both_sides_of_its_layout_rule(shape, channels_last):
    x, weights, banks = inputs(shape, channels_last)
    out, grad = assert_equal_to_the_loop("fast", x, weights, banks)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    # the layout comes back as it went in (forward and gradient), which the next layers'
    # speed depends on: a channels_last network stays channels_last
    assert out.is_contiguous(memory_format=layout)
    assert grad.is_contiguous(memory_format=layout)


def test_a_non_contiguous_input_takes_the_channels_last_form_and_is_exact():
    x, weights, banks = inputs((4, 6, 9, 12), channels_last=False)
    sliced = x[..., ::2]  # neither layout: the channels_last fold copies it
    assert not sliced.is_contiguous() and not sliced.is_contiguous(
        memory_format=torch.channels_last
    )
    out = mix_fast(sliced, weights, banks)
    torch.testing.assert_close(out, mix_loop(sliced, weights, banks), atol=1e-5, rtol=0)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_off_the_cpu_the_fast_path_keeps_the_contiguous_fold():
    # the channels_last fold was measured on CPU only (meta tensors stand in for a GPU here)
    x, weights, banks = inputs((4, 6, 7, 7), channels_last=True)
    meta = [bank.to("meta") for bank in banks]
    out = mix_fast(x.to("meta"), weights.to("meta"), meta)
    assert out.shape == (4, 6, 7, 7) and out.is_contiguous()


@pytest.mark.parametrize("shape", [(4, 8, 8, 8), (3, 6, 9, 7)])
def test_the_gates_pooling_is_the_mean_bit_for_bit(shape):
    # the gate pools with sum / (H*W) for its cheaper backward: a trained gate must give the
    # same weights as with the mean it was trained with
    gate = SoftGate(shape[1], 3)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    hidden = torch.relu(gate.fc1(x.mean(dim=(2, 3))))
    expected = gate.fc2(hidden).softmax(dim=1)
    assert torch.equal(gate(x, [0, 1, 2]), expected)
