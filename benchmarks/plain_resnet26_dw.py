"""The depthwise-separable ResNet-26 written with plain ``nn.Conv2d`` layers and no domain
machinery: the yardstick against which ``bench_model.py`` measures the cost of the routing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sep_conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.Conv2d(cin, cout, 1, bias=False),
    )


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = sep_conv(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = sep_conv(cout, cout, 1), nn.BatchNorm2d(cout)
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = F.avg_pool2d(x, self.stride) if self.stride > 1 else x
        if self.extra:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
        return F.relu(out + shortcut)


class PlainResNet26DW(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem, self.stem_bn = sep_conv(3, 64, 1), nn.BatchNorm2d(64)
        blocks, cin = [], 64
        for cout in (128, 256, 512):
            for i in range(4):
                blocks.append(Block(cin, cout, 2 if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.norm = nn.BatchNorm2d(512)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem_bn(self.stem(x)))
        return self.fc(F.relu(self.norm(x)).mean(dim=(2, 3)))
