"""The tensors dissection reads: the output of every depthwise and every pointwise convolution.

Both are raw convolution outputs, before any norm (a separable conv has no norm between its
depthwise and its pointwise part, and the pointwise output is read before the BN that follows
it), so the two layer types are compared on the same kind of tensor. Layers are found by
structure (every :class:`SepConv`), never by name.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from multidomain.errors import ConfigError
from multidomain.layers.sepconv import SepConv

KINDS = ("depthwise", "pointwise")


@dataclass(frozen=True)
class LayerRef:
    """A dissected tensor: the output of ``module``, at ``name`` in the model."""

    name: str
    kind: str  # "depthwise" or "pointwise"
    module: nn.Module


def find_layers(model: nn.Module) -> list[LayerRef]:
    """Every depthwise and pointwise output of the model's separable convs, in forward order."""
    refs = []
    for path, module in model.named_modules():
        if isinstance(module, SepConv):
            prefix = f"{path}." if path else ""
            refs.append(LayerRef(prefix + "conv_dw", "depthwise", module.conv_dw))
            refs.append(LayerRef(prefix + "conv_pw", "pointwise", module.conv_pw))
    if not refs:
        raise ConfigError(
            f"{type(model).__name__} has no depthwise-separable convolution to dissect: "
            "dissection compares depthwise and pointwise units (resnet26_dw and its methods)"
        )
    return refs


def select_layers(refs: list[LayerRef], patterns: list[str] | None) -> list[LayerRef]:
    """The layers whose names match any of ``patterns`` (shell patterns; all when None)."""
    if not patterns:
        return refs
    chosen = [r for r in refs if any(fnmatch.fnmatchcase(r.name, p) for p in patterns)]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(r.name, pattern) for r in refs):
            names = ", ".join(r.name for r in refs[:6])
            raise ConfigError(
                f"--layers {pattern!r} matches no dissectable layer; the layers are "
                f"{names}, ... ({len(refs)} in all; patterns like 'stages.2.*' work)"
            )
    return chosen


@contextlib.contextmanager
def watching(
    refs: list[LayerRef], sink: Callable[[LayerRef, torch.Tensor], None]
) -> Iterator[None]:
    """Call ``sink(layer, output)`` with each layer's output while the block runs."""
    handles = [
        ref.module.register_forward_hook(
            lambda _module, _inputs, output, ref=ref: sink(ref, output.detach())
        )
        for ref in refs
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def random_rotation(units: int, seed: int) -> torch.Tensor:
    """A ``(units, units)`` random orthogonal matrix (Haar, from a QR decomposition)."""
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(units, units, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


def rotate(activation: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """``(N, K, H, W)`` activations in the rotated unit basis: unit j = sum_k R[j, k] a_k."""
    return torch.einsum("jk,nkhw->njhw", rotation, activation)
