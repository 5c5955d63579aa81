"""Residual adapters of Rebuffi et al. on the standard ResNet-26 (PAPER.md section 7, placement
from the official ``srebuffi/residual_adapters`` code).

Both wrap each of the 25 shared 3x3 convs ("conv_task"); the block's per-domain BN that follows
the conv is the adapter's output BN:

- series (Rebuffi 2017): with ``y = conv3x3(x)``, the unit gives ``y + W_t(BN_in_t(y))``, so the
  block computes ``BN_out_t(y + W_t(BN_in_t(y)))``; ``W_t`` a per-domain 1x1 conv
  (planes -> planes, no bias);
- parallel (Rebuffi 2018): the unit gives ``conv3x3(x) + P_t(x)``, so the block computes
  ``BN_t(conv3x3(x) + P_t(x))``; ``P_t`` a per-domain 1x1 conv (in_planes -> planes, no bias,
  the 3x3 conv's stride, applied as a subsampling of its input) on that conv's own input.

A new domain's adapters are initialised like convolutions (normal(0, sqrt(2 / n)), the model's
``init_weights``), not at zero, and are never copied from the domain it is added from: the
official code copies a new task's 3x3 convs and block BNs from the source network, not its
adapters (nor the series adapter's inner BN). A unit *is* the shared 3x3 conv (a ``Conv2d``
subclass), so its weight keeps the path of a plain model's conv (``stem.weight``) and a
pretrained plain model converts by ``reshare``, whose domains keep their function: their added
adapters start at zero (as on the Decathlon, where the source domain of the parallel-adapter
row is the plain pretrained network).
"""

from __future__ import annotations

import torch
from torch import nn

from multidomain.layers.per_domain import (
    PerDomain,
    Route,
    Routed,
    batch_norm,
    current_route,
    declare_role,
    declared_role,
)

ADAPTER_ROLE = "adapter"


def adapter_conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A 1x1 adapter convolution (no bias)."""
    conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
    return declare_role(conv, ADAPTER_ROLE)


@torch.no_grad()
def zero_adapter_output(adapter: nn.Module) -> None:
    """Zero ``adapter``'s 1x1 convs: the unit then computes the plain conv's output."""
    for module in adapter.modules():
        if declared_role(module) == ADAPTER_ROLE:
            module.weight.zero_()


def per_domain_adapters(adapters: dict[str, nn.Module]) -> PerDomain:
    """The domains' adapters of one unit: a new domain's start fresh (``fresh_on_add``); a
    domain the model had before it was converted starts at zero output (``neutral_init``)."""
    container = PerDomain(adapters)
    container.fresh_on_add = True
    container.neutral_init = zero_adapter_output
    return container


class SeriesAdapter(nn.Module):
    """One domain's series adapter: ``W(BN_in(y))`` (the unit adds ``y``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn_in = batch_norm(channels)
        self.conv = adapter_conv(channels, channels)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn_in(y))


class SeriesAdapterConv(nn.Conv2d, Routed):
    """A shared 3x3 conv followed by each domain's series adapter: ``y + W_t(BN_in_t(y))``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, domains) -> None:
        super().__init__(in_channels, out_channels, 3, stride, 1, bias=False)
        declare_role(self, "conv")
        self.adapter = per_domain_adapters({d: SeriesAdapter(out_channels) for d in domains})

    def forward(self, x: torch.Tensor, route: Route | None = None) -> torch.Tensor:
        y = super().forward(x)
        return y + self.adapter(y, route or current_route())


class ParallelAdapterConv(nn.Conv2d, Routed):
    """A shared 3x3 conv plus each domain's 1x1 conv on the same input: ``conv(x) + P_t(x)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, domains) -> None:
        super().__init__(in_channels, out_channels, 3, stride, 1, bias=False)
        declare_role(self, "conv")
        # the 1x1 conv's stride is applied by subsampling its input, which is the same
        # computation: a strided 1x1 conv's backward on a channels_last input of a few channels
        # crashes the process in torch 2.14 (segfault / heap corruption, e.g. 4 -> 8 channels
        # at 32x32, stride 2), and slicing then a stride-1 conv avoids that code path
        self.adapter = per_domain_adapters(
            {d: adapter_conv(in_channels, out_channels) for d in domains}
        )

    def forward(self, x: torch.Tensor, route: Route | None = None) -> torch.Tensor:
        step = self.stride[0]
        subsampled = x[:, :, ::step, ::step] if step > 1 else x  # (B, C_in, H_out, W_out)
        return super().forward(x) + self.adapter(subsampled, route or current_route())
