"""Per-sample mixtures of depthwise banks, ``sum_d weights[n, d] * banks[d](x)``, in exact forms.

The depthwise convolution is linear in its kernel, so the gate goes into the weights: each
sample's kernel is ``w_n = sum_d weights[n, d] W_d`` and one convolution with ``groups = N * C``
runs the batch folded into the channels (as CondConv does). Two layouts of that fold:

- :func:`mix_folded_channels_last` for channels_last inputs (the network's format): the batch is
  folded into a channels_last ``(1, N*C, H, W)`` tensor (memory ``H, W, N, C``), which oneDNN's
  depthwise kernels read and write as they are; one copy in and one out (the same two in the
  backward), and the output is channels_last, as the pointwise conv after it wants.
- :func:`mix_folded` for contiguous inputs: the fold is a free view; the output is contiguous.

The rule (:func:`mix_fast`) is static, by layout and device: channels_last (or any
non-contiguous) CPU input -> the channels_last fold, else the contiguous fold. It was measured
at the network's four layer shapes (BENCHMARKS.md, "Soft sharing"), where the channels_last
fold was the faster of the two at every shape, eval and training, so no shape threshold is
needed. Before it, channels_last inputs took the contiguous fold: one copy into the contiguous
layout, then oneDNN reordered each operand of the convolution into its blocked layout and back
(seven activation-sized reorders per training step), and the pointwise conv after it got a
contiguous input, which cost it 15-60% more at 512 channels 8x8. Also measured and slower
(the earlier sessions' notes in BENCHMARKS.md): a stacked ``Conv2d(C, D*C, groups=C)`` then a
gate-weighted sum (0.5-1.1x the loop), nine shifted multiply-adds, a hand-written kernel gradient.
The channels_last fold was measured on CPU (oneDNN) only: other devices keep the contiguous fold.
:func:`mix_loop` is the official loop over the banks, the reference the tests compare against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def mixed_kernels(weights: torch.Tensor, banks: Sequence[nn.Conv2d]) -> torch.Tensor:
    """``(N, D)`` weights and D banks of ``(C, 1, kh, kw)`` -> ``(N*C, 1, kh, kw)`` kernels."""
    kernels = torch.stack([bank.weight for bank in banks])  # (D, C, 1, kh, kw)
    mixed = torch.einsum("nd,dcikl->ncikl", weights, kernels)  # (N, C, 1, kh, kw)
    return mixed.reshape(-1, 1, *mixed.shape[-2:])


def grouped_conv(folded: torch.Tensor, kernels: torch.Tensor, like: nn.Conv2d) -> torch.Tensor:
    """One depthwise convolution over ``(1, N*C, H, W)`` with ``like``'s geometry."""
    return F.conv2d(
        folded, kernels, None, like.stride, like.padding, like.dilation, groups=kernels.shape[0]
    )


def mix_folded(x: torch.Tensor, weights: torch.Tensor, banks: Sequence[nn.Conv2d]) -> torch.Tensor:
    """The batch folded into channels in the contiguous layout (a view for contiguous ``x``)."""
    n, c, h, w = x.shape
    out = grouped_conv(x.reshape(1, n * c, h, w), mixed_kernels(weights, banks), banks[0])
    return out.view(n, c, *out.shape[-2:])


def to_folded(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(1, N*C, H, W)`` channels_last, memory ``(H, W, N, C)``: one copy."""
    n, c, h, w = x.shape
    return x.permute(2, 3, 0, 1).reshape(1, h, w, n * c).permute(0, 3, 1, 2)


def from_folded(y: torch.Tensor, n: int) -> torch.Tensor:
    """:func:`to_folded`'s inverse, into channels_last ``(N, C, H, W)``: one copy."""
    _, nc, h, w = y.shape
    unfolded = y[0].permute(1, 2, 0).reshape(h, w, n, nc // n).permute(2, 3, 0, 1)
    return unfolded.contiguous(memory_format=torch.channels_last)


class _Fold(torch.autograd.Function):
    """:func:`to_folded` whose gradient comes back channels_last (autograd's own backward of
    the permutes would hand the layer before a tensor in neither layout)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.n = x.shape[0]
        return to_folded(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return from_folded(grad, ctx.n)


class _Unfold(torch.autograd.Function):
    """:func:`from_folded`, its gradient folded back for the convolution's backward."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, n: int) -> torch.Tensor:
        return from_folded(y, n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return to_folded(grad), None


def mix_folded_channels_last(
    x: torch.Tensor, weights: torch.Tensor, banks: Sequence[nn.Conv2d]
) -> torch.Tensor:
    """The batch folded into channels in the channels_last layout; channels_last output."""
    out = grouped_conv(_Fold.apply(x), mixed_kernels(weights, banks), banks[0])
    return _Unfold.apply(out, x.shape[0])


def mix_fast(x: torch.Tensor, weights: torch.Tensor, banks: Sequence[nn.Conv2d]) -> torch.Tensor:
    """The fastest exact form measured for ``x``'s layout and device (module docstring)."""
    if x.is_contiguous() or x.device.type != "cpu":
        return mix_folded(x, weights, banks)
    return mix_folded_channels_last(x, weights, banks)


def mix_loop(x: torch.Tensor, weights: torch.Tensor, banks: Sequence[nn.Conv2d]) -> torch.Tensor:
    """The official loop over the banks (the reference for the other forms)."""
    out = 0
    for d, bank in enumerate(banks):
        out = out + weights[:, d, None, None, None] * bank(x)
    return out


MIXERS = {
    "fast": mix_fast,
    "loop": mix_loop,
    "folded": mix_folded,
    "folded_channels_last": mix_folded_channels_last,
}
