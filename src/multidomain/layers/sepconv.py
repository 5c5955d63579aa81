"""Depthwise-separable convolution of the official code (PAPER.md section 2).

A depthwise 3x3 (one filter per channel, the stride sits here) followed directly by a pointwise
1x1; no norm or activation in between. Either half can be shared or per domain.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multidomain.layers.per_domain import Route, Routed, per_domain_or_shared, route_call


class SepConv(Routed):
    """``conv_pw(conv_dw(x))`` where each of the two is shared or a per-domain dictionary."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        domains: Sequence[str],
        share_dw: bool,
        share_pw: bool,
    ) -> None:
        super().__init__()
        self.conv_dw = per_domain_or_shared(
            lambda: nn.Conv2d(
                in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False
            ),
            domains,
            share_dw,
        )
        self.conv_pw = per_domain_or_shared(
            lambda: nn.Conv2d(in_channels, out_channels, 1, bias=False), domains, share_pw
        )

    def forward(self, x: torch.Tensor, route: Route) -> torch.Tensor:
        return route_call(self.conv_pw, route_call(self.conv_dw, x, route), route)
