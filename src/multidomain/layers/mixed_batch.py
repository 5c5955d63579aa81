"""Eval-mode fast paths for a mixed batch through a per-domain layer.

The general path (:class:`~multidomain.layers.PerDomain`) splits the sorted batch into one slice
per domain, runs each domain's module on its slice and concatenates the results: one call per
domain and a copy of the whole output (the concatenation) at every per-domain layer. In eval
mode two layer types can take the whole batch in one call instead:

- batch norm with running statistics is a per-channel affine map, ``x * scale + shift`` with
  ``scale = weight / sqrt(running_var + eps)`` and ``shift = bias - running_mean * scale``
  (each module's own ``eps``), which is how PyTorch's CPU kernel computes it too. Gathering
  each sample's ``scale`` and ``shift`` by its domain makes the mixed batch one ``addcmul``.
- a depthwise convolution of a contiguous (NCHW) batch is one grouped convolution over the
  batch folded into channels, ``(1, N*C, H, W)`` with ``groups = N*C`` and each sample's
  domain's kernels (CondConv's trick; the soft-sharing fast path does the same).

Results equal the per-domain path up to float32 rounding (the same terms, sometimes summed by
another kernel). Training mode never comes here: batch norm then needs each domain's own batch
statistics, which only the per-domain path computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:  # per_domain calls this module
    from multidomain.layers.per_domain import Route

# timm's BatchNormAct2d (batch norm, then its own dropout and activation), known by name so that
# timm stays optional.
NORM_ACT = "BatchNormAct2d"


def mixed_eval(modules: Sequence[nn.Module], x: torch.Tensor, route: Route) -> torch.Tensor | None:
    """The output of ``modules`` (one per segment of ``route``) on the mixed batch ``x`` in one
    call, or ``None`` when no fast path applies (training mode, another layer type)."""
    first = modules[0]
    if x.dim() != 4 or any(m.training or type(m) is not type(first) for m in modules):
        return None
    if is_running_batch_norm(first):
        out = batch_norm_per_sample(modules, x, route)
        return first.act(first.drop(out)) if type(first).__name__ == NORM_ACT else out
    if is_plain_depthwise(first) and x.is_contiguous():
        return depthwise_per_sample(modules, x, route)
    return None


def is_running_batch_norm(module: nn.Module) -> bool:
    """A 2d batch norm that normalises with its running statistics in eval mode."""
    known = type(module) is nn.BatchNorm2d or type(module).__name__ == NORM_ACT
    return known and module.running_mean is not None and module.running_var is not None


def is_plain_depthwise(module: nn.Module) -> bool:
    """A ``Conv2d`` (not a subclass with its own padding, like timm's ``Conv2dSame``) with one
    filter per input channel and zero padding."""
    return (
        type(module) is nn.Conv2d
        and module.groups == module.in_channels == module.out_channels
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def stacked(values: list[torch.Tensor | None]) -> torch.Tensor | None:
    """One tensor per segment stacked, ``(S, ...)``; ``None`` for a missing optional tensor (a
    batch norm without affine weights, a conv without bias)."""
    return None if values[0] is None else torch.stack(values)


def batch_norm_per_sample(
    modules: Sequence[nn.Module], x: torch.Tensor, route: Route
) -> torch.Tensor:
    """Eval-mode batch norm of each sample with its domain's statistics and affine weights:
    ``x * scale + shift``, ``scale = weight / sqrt(running_var + eps)`` and ``shift = bias -
    running_mean * scale`` (the terms PyTorch's CPU kernel computes), gathered per sample.
    Few and fused operators: at small activations their count is what the layer costs."""
    variance = stacked([m.running_var for m in modules])
    scale = (variance + _eps(modules, variance)).sqrt_().reciprocal_()
    weight = stacked([m.weight for m in modules])
    if weight is not None:
        scale = scale * weight
    mean = stacked([m.running_mean for m in modules])
    bias = stacked([m.bias for m in modules])
    shift = -mean * scale if bias is None else torch.addcmul(bias, mean, scale, value=-1)
    index = route.segment_index(x.device)
    n, c = x.shape[:2]
    scale, shift = scale[index].view(n, c, 1, 1), shift[index].view(n, c, 1, 1)
    if scale.dtype != x.dtype:  # bf16 / fp16 activations, float32 statistics: as batch_norm
        scale, shift = scale.to(x.dtype), shift.to(x.dtype)
    return torch.addcmul(shift, x, scale)


def _eps(modules: Sequence[nn.Module], like: torch.Tensor) -> float | torch.Tensor:
    """Each module's own eps: one number when they agree (copies of one layer), else ``(S, 1)``."""
    values = [m.eps for m in modules]
    if all(v == values[0] for v in values):
        return values[0]
    return torch.tensor(values, dtype=like.dtype, device=like.device).unsqueeze(1)


def depthwise_per_sample(
    modules: Sequence[nn.Conv2d], x: torch.Tensor, route: Route
) -> torch.Tensor:
    first = modules[0]
    n, c, h, w = x.shape
    index = route.segment_index(x.device)
    weight = stacked([m.weight for m in modules])[index]  # (N, C, 1, k, k)
    bias = stacked([m.bias for m in modules])
    if bias is not None:
        bias = bias[index].reshape(n * c)
    out = F.conv2d(
        x.reshape(1, n * c, h, w),
        weight.reshape(n * c, 1, *weight.shape[-2:]),
        bias,
        first.stride,
        first.padding,
        first.dilation,
        groups=n * c,
    )
    return out.reshape(n, c, *out.shape[-2:])
