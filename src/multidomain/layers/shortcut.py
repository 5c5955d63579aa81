"""The parameter-free shortcut of the ResNet-26s (PAPER.md section 2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PadShortcut(nn.Module):
    """2x2 average pool (when strided), then zero channels appended to reach ``out_channels``.

    Any input size works: odd sizes pool with ``ceil_mode`` like the strided convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"shortcut cannot shrink {in_channels} -> {out_channels} channels")
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            # ceil_mode matches the strided 3x3 conv on odd sizes (9 -> 5); even sizes as usual
            x = F.avg_pool2d(x, self.stride, ceil_mode=True, count_include_pad=False)
        if self.extra_channels:
            # (B, C, H, W) -> (B, C + extra, H, W); pad keeps the input's memory format.
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x
