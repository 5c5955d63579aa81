"""Depthwise-separable convolution of the official code (PAPER.md section 2).

A depthwise 3x3 (one filter per channel, the stride sits here) followed directly by a pointwise
1x1; no norm or activation in between. The two parts are injected (built by a method, see
``models.methods``): each is a shared module, a per-domain dictionary, or a method's own layer.
"""

from __future__ import annotations

import torch
from torch import nn

from multidomain.layers.per_domain import Route, Routed, route_call


class SepConv(Routed):
    """``conv_pw(conv_dw(x))``: the depthwise and the pointwise part, as given."""

    def __init__(self, conv_dw: nn.Module, conv_pw: nn.Module) -> None:
        super().__init__()
        self.conv_dw = conv_dw
        self.conv_pw = conv_pw

    def forward(self, x: torch.Tensor, route: Route | None = None) -> torch.Tensor:
        return route_call(self.conv_pw, route_call(self.conv_dw, x, route), route)
