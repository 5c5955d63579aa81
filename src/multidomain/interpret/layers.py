"""The tensors dissection reads: the output of every depthwise and every pointwise convolution.

Both are raw convolution outputs, before any norm (a separable conv has no norm between its
depthwise and its pointwise part, and the pointwise output is read before the BN that follows
it), so the two layer types are compared on the same kind of tensor. Layers are found by
structure, never by name: every :class:`SepConv` of our networks; in a converted network
(``multidomain.convert``) every per-domain depthwise conv and every shared pointwise layer (a
1x1 conv with one group, or ConvNeXt's ``nn.Linear`` on channels-last maps, read as
``(N, C, H, W)``). Layers whose maps have no spatial extent (squeeze-excitation, classifier)
are left out by :func:`spatial_layers`.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from multidomain.errors import ConfigError
from multidomain.layers.per_domain import PerDomain
from multidomain.layers.sepconv import SepConv

KINDS = ("depthwise", "pointwise")


@dataclass(frozen=True)
class LayerRef:
    """A dissected tensor: the output of ``module``, at ``name`` in the model."""

    name: str
    kind: str  # "depthwise" or "pointwise"
    module: nn.Module
    channels_last: bool = False  # the output is (N, H, W, C) (ConvNeXt's linear pointwise)


def find_layers(model: nn.Module) -> list[LayerRef]:
    """Every depthwise and pointwise output of the model, in module order."""
    refs = _separable_layers(model) or _converted_layers(model)
    if not refs:
        raise ConfigError(
            f"{type(model).__name__} has no depthwise-separable convolution to dissect: "
            "dissection compares depthwise and pointwise units (resnet26_dw and its methods, "
            "or a network converted with multidomain.convert)"
        )
    return refs


def _separable_layers(model: nn.Module) -> list[LayerRef]:
    refs = []
    for path, module in model.named_modules():
        if isinstance(module, SepConv):
            prefix = f"{path}." if path else ""
            refs.append(LayerRef(prefix + "conv_dw", "depthwise", module.conv_dw))
            refs.append(LayerRef(prefix + "conv_pw", "pointwise", module.conv_pw))
    return refs


def _converted_layers(model: nn.Module) -> list[LayerRef]:
    """Per-domain depthwise convs and shared pointwise layers of a converted network."""
    refs: list[LayerRef] = []
    per_domain: list[str] = []
    for path, module in model.named_modules():
        if any(path.startswith(f"{outer}.") for outer in per_domain):
            continue  # one domain's copy: the container is the layer
        if isinstance(module, PerDomain):
            per_domain.append(path)
            first = next(iter(module.values()), None)
            if first is not None and _is_depthwise(first):
                refs.append(LayerRef(path, "depthwise", module))
        elif _is_pointwise_conv(module):
            refs.append(LayerRef(path, "pointwise", module))
        elif isinstance(module, nn.Linear):
            refs.append(LayerRef(path, "pointwise", module, channels_last=True))
    return refs if any(r.kind == "depthwise" for r in refs) else []


def _is_depthwise(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == module.in_channels > 1
        and module.kernel_size != (1, 1)
    )


def _is_pointwise_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1


def spatial_layers(model: nn.Module, domain: str, refs: list[LayerRef], example) -> list[LayerRef]:
    """The layers of ``refs`` whose output on ``example`` (a normalised input batch) is a map
    ``(N, C, H, W)`` with more than one position: units of a pooled squeeze-excitation vector
    or of a classifier have no mask to compare with a concept's."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(ref: LayerRef, output: torch.Tensor) -> None:
        shapes.setdefault(ref.name, tuple(output.shape))

    with watching(refs, record), torch.inference_mode():
        model(example, domain=domain)
    return [r for r in refs if _is_map(shapes.get(r.name, ()))]


def _is_map(shape: tuple[int, ...]) -> bool:
    return len(shape) == 4 and shape[2] * shape[3] > 1


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
            lambda _module, _inputs, output, ref=ref: sink(ref, _as_maps(ref, output.detach()))
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


def _as_maps(ref: LayerRef, output: torch.Tensor) -> torch.Tensor:
    """``output`` as ``(N, C, H, W)`` maps (a channels-last linear's is ``(N, H, W, C)``)."""
    if ref.channels_last and output.dim() == 4:
        return output.permute(0, 3, 1, 2)
    return output
