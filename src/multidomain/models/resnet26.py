"""The two ResNet-26s of the paper (PAPER.md section 2).

``resnet26_dw``: the depthwise-separable ResNet-26 of the official code. Stem SepConv 3->64 + BN
(no ReLU); three stages of 4 basic blocks with 128/256/512 channels, stride 2 each; blocks
SepConv -> BN -> ReLU -> SepConv -> BN, plus a parameter-free shortcut, then ReLU; head
BN -> ReLU -> global average pool -> dropout -> linear. 25 separable convs + 1 linear.

``resnet26_std``: the standard ResNet-26 of Rebuffi et al. (3x3 convs, stem 3->32,
stages 64/128/256), the backbone of the baselines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from multidomain.layers import DomainHeads, PadShortcut, PerDomain, Route, route_call
from multidomain.layers.heads import ClassifierHead
from multidomain.layers.per_domain import batch_norm, init_weights
from multidomain.models._registry import register_model
from multidomain.models.base import MultiDomainNet
from multidomain.models.config import ModelConfig
from multidomain.models.methods import ConvRequest, get_method

# ConvFactory(in_channels, out_channels, stride, is_last) -> a domain-aware conv layer.
ConvFactory = Callable[[int, int, int, bool], nn.Module]

BLOCKS_PER_STAGE = 4


class BasicBlock(nn.Module):
    """conv1 -> bn1 -> ReLU -> conv2 -> bn2, plus shortcut, then ReLU."""

    def __init__(
        self, conv1: nn.Module, conv2: nn.Module, out_channels: int, shortcut: PadShortcut, bn
    ) -> None:
        super().__init__()
        self.conv1 = conv1
        self.bn1 = bn(out_channels)
        self.conv2 = conv2
        self.bn2 = bn(out_channels)
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor, route: Route) -> torch.Tensor:
        out = F.relu(self.bn1(route_call(self.conv1, x, route), route))
        out = self.bn2(route_call(self.conv2, out, route), route)
        return F.relu(out + self.shortcut(x))


class ResNet26(MultiDomainNet):
    """A multi-domain ResNet-26: stem, three stages of basic blocks, per-domain norm and head."""

    def __init__(self, config: ModelConfig, make_conv: ConvFactory, channels: Sequence[int]):
        super().__init__(config)
        names = list(config.domains)

        def bn(num_channels: int) -> PerDomain:
            return PerDomain({d: batch_norm(num_channels) for d in names})

        stem_channels, *stage_channels = channels
        self.stem = make_conv(3, stem_channels, 1, False)
        self.stem_bn = bn(stem_channels)
        self.stages = nn.ModuleList()
        in_channels = stem_channels
        for stage_index, out_channels in enumerate(stage_channels):
            blocks = nn.ModuleList()
            for block_index in range(BLOCKS_PER_STAGE):
                stride = 2 if block_index == 0 else 1
                is_last = stage_index == len(stage_channels) - 1 and block_index == 3
                blocks.append(
                    BasicBlock(
                        make_conv(in_channels, out_channels, stride, False),
                        make_conv(out_channels, out_channels, 1, is_last),
                        out_channels,
                        PadShortcut(in_channels, out_channels, stride),
                        bn,
                    )
                )
                in_channels = out_channels
            self.stages.append(blocks)
        self.num_features = in_channels
        self.norm = bn(in_channels)
        self.head = DomainHeads(
            {
                d: ClassifierHead(in_channels, k, config.dropout.get(d, 0.0))
                for d, k in config.domains.items()
            }
        )
        self.apply(init_weights)
        self._apply_memory_format()

    def forward_features(self, x: torch.Tensor, route: Route) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, num_features, H / 8, W / 8)`` before the final norm."""
        x = self.stem_bn(route_call(self.stem, x, route), route)
        for blocks in self.stages:
            for block in blocks:
                x = block(x, route)
        return x

    def forward_head(self, x: torch.Tensor, route: Route) -> torch.Tensor:
        """Final BN -> ReLU -> global average pool -> (dropout) -> linear, per domain."""
        x = F.relu(self.norm(x, route))
        return self.head(x.mean(dim=(2, 3)), route)


def _channels(base: Sequence[int], width: float) -> list[int]:
    return [max(1, round(c * width)) for c in base]


def _conv_factory(config: ModelConfig, kind: str) -> ConvFactory:
    """The method of ``config`` builds every convolution unit of ``kind``."""
    method = get_method(config.method)
    domains, options = list(config.domains), config.method_options

    def make(cin: int, cout: int, stride: int, is_last: bool) -> nn.Module:
        return method.conv(ConvRequest(kind, cin, cout, stride, is_last, domains, options))

    return make


@register_model(default_method="pointwise")
def resnet26_dw(config: ModelConfig) -> ResNet26:
    """Depthwise-separable ResNet-26 (Guo et al. 2019); 3,169,667 parameters for one
    1000-class domain at width 1."""
    channels = _channels((64, 128, 256, 512), config.width)
    return ResNet26(config, _conv_factory(config, "separable"), channels)


@register_model(default_method="all")
def resnet26_std(config: ModelConfig) -> ResNet26:
    """Standard ResNet-26 of Rebuffi et al. (2017), the baselines' backbone."""
    channels = _channels((32, 64, 128, 256), config.width)
    return ResNet26(config, _conv_factory(config, "standard"), channels)
