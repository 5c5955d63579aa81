"""Shared pieces of the converter tests: the supported families, built once per session with
random weights whose norms and layer scales are far from their initial values (so a converted
network that skipped a layer, or used another domain's, gives visibly other logits)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from engine_helpers import once
from multidomain.convert import ConvertedNet, convert

timm = pytest.importorskip("timm")  # the `convert` extra; CI installs it (Makefile)

TORCHVISION = ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"]
TIMM = ["mobilenetv2_100", "mobilenetv3_small_100", "mobilenetv3_large_100", "efficientnet_b0"]
CONVNEXT = ["torchvision:convnext_tiny", "timm:convnext_tiny"]
FAMILIES = [f"torchvision:{n}" for n in TORCHVISION] + [f"timm:{n}" for n in TIMM] + CONVNEXT
NUM_CLASSES = 10
DOMAINS = {"a": NUM_CLASSES, "b": 5}
SIZE = 32  # px; every family reduces it to 1x1


def original(source: str) -> nn.Module:
    """The plain network of ``source`` (10 classes, eval mode), built once per session; the
    caller gets a copy."""

    def build() -> nn.Module:
        torch.manual_seed(0)
        prefix, _, name = source.partition(":")
        if prefix == "timm":
            network = timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES)
        else:
            network = torchvision.models.get_model(name, weights=None, num_classes=NUM_CLASSES)
        randomize_norms(network, seed=1)
        with torch.no_grad():
            for module in network.modules():
                if isinstance(module, nn.Linear):  # torchvision's std 0.01 gives tiny logits
                    module.weight.normal_(0.0, module.in_features**-0.5)
        calibrate_batch_norms(network)
        return network.eval().to(memory_format=torch.channels_last)

    return copy.deepcopy(once(f"convert:{source}", build))


def two_domains(source: str) -> tuple[nn.Module, ConvertedNet]:
    """The original and its conversion to domains a (from the original) and b (its norms and
    layer scales changed, so that the domains compute different functions)."""
    network = original(source)
    model = convert(network, DOMAINS).eval()
    for _, container in model.per_domain_modules():
        if "b" in container:
            randomize_norms(container["b"], seed=2)
            for param in container["b"].parameters():
                param.data.mul_(1.1)  # depthwise kernels and layer scales too
    return network, model


@torch.no_grad()
def randomize_norms(network: nn.Module, seed: int) -> None:
    """Norm affine weights (and BN statistics) and layer scales away from their initial values."""
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0.0, 0.1, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            module.weight.uniform_(0.5, 1.5, generator=generator)
            module.bias.normal_(0.0, 0.1, generator=generator)
    for name, param in network.named_parameters():
        if name.rpartition(".")[2] in ("layer_scale", "gamma"):
            param.uniform_(0.5, 1.0, generator=generator)


@torch.no_grad()
def calibrate_batch_norms(network: nn.Module) -> None:
    """BN running statistics of a batch of images: with the initial ones (0 and 1) the signal of
    a random network fades with depth and every image gets the same logits."""
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    network.train()
    network(images(8, seed=99))
    for norm in norms:
        norm.momentum = 0.1
    network.eval()


def images(batch: int = 2, seed: int = 0) -> torch.Tensor:
    x = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=torch.channels_last)


def assert_mixed_equals_per_domain(model: nn.Module, x: torch.Tensor, names: list[str]) -> None:
    """A mixed batch gives each sample its domain's logits (padded with ``-inf``).

    In eval mode a mixed batch takes fast paths (``layers.mixed_batch``: batch norm as one
    per-sample affine map, ...) that compute the same terms with other float32 roundings, and
    these random networks amplify rounding: a one-ulp change of the input moves their logits
    by up to ~3e-3 (EfficientNet-B0, logits up to ~140). So the sums are checked in float64,
    where rounding is 1e-16 (equal to 1e-9 relative), and in float32 the mixed batch must be
    as close to the float64 result as the per-domain pass is (4x its rounding error).
    """
    exact, x64 = copy.deepcopy(model).double(), x.double()
    with torch.no_grad():
        mixed, mixed64 = model(x, names), exact(x64, names)
        for domain in dict.fromkeys(names):
            rows = [i for i, name in enumerate(names) if name == domain]
            classes = model.domains[domain]
            reference = exact(x64[rows], domain)
            scale = float(reference.abs().max())
            torch.testing.assert_close(
                mixed64[rows, :classes], reference, rtol=0, atol=1e-9 * scale
            )
            rounding = float((model(x[rows], domain).double() - reference).abs().max())
            error = float((mixed[rows, :classes].double() - reference).abs().max())
            assert error <= 4 * rounding + 1e-6 * scale, (domain, error, rounding)
            assert torch.isneginf(mixed[rows, classes:]).all()  # padding of narrower heads
