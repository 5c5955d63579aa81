"""Dissection of converted networks (issue 14 with issue 12's converter): per-domain depthwise
convs and shared pointwise layers are found by structure, ConvNeXt's linear pointwise layers
are read as (N, C, H, W) maps, and layers without spatial maps (squeeze-excitation,
classifier) are left out."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convert_helpers import original
from multidomain import convert
from multidomain.interpret.dissect import DissectOptions, ImageInput, run_dissection
from multidomain.interpret.layers import find_layers, spatial_layers
from multidomain.interpret.offline_probe import OfflineProbe
from multidomain.interpret.report import write_report
from multidomain.layers import PerDomain

pytestmark = pytest.mark.usefixtures("one_thread")

INPUT = ImageInput([0.5] * 3, [0.25] * 3, 64)


def _converted(source: str):
    return convert(original(source), domains={"a": 10, "b": 3}).eval()


def test_a_converted_mobilenet_is_dissected_by_structure(tmp_path):
    model = _converted("torchvision:mobilenet_v3_small")
    refs = find_layers(model)
    depthwise = [r for r in refs if r.kind == "depthwise"]
    assert len(depthwise) == 11 and all(isinstance(r.module, PerDomain) for r in depthwise)
    probe = OfflineProbe(8, 64, seed=0)
    kept = spatial_layers(model, "b", refs, INPUT(probe.batch(torch.arange(1).numpy()).images))
    left_out = {r.name for r in refs} - {r.name for r in kept}
    assert any(n.endswith(".fc1") for n in left_out)  # the squeeze-excitation convs
    assert all(n.endswith((".fc1", ".fc2")) or ".classifier." in n for n in left_out)
    options = DissectOptions(batch_size=8, replicates=2, top_images=2)
    patterns = ["network.features.1.*", "network.features.4.*"]
    result = run_dissection(model, "b", probe, INPUT, patterns, options, controls=True)
    names = [r.name for r in result.variants["trained"]]
    assert "network.features.1.block.0.0" in names  # the per-domain depthwise conv of block 1
    assert not any(".fc" in n for n in names)
    written = write_report(result, tmp_path, model, probe, INPUT)
    text = (tmp_path / "dissect.md").read_text()
    assert "**Answer.** Depthwise layers hold" in text and "Control rotated:" in text
    assert set(result.variants) == {"trained", "random-init", "rotated"}
    assert [p.name for p in written][:2] == ["dissect.md", "dissect.csv"]


def test_convnext_linear_pointwise_layers_are_read_as_maps():
    model = _converted("torchvision:convnext_tiny")
    refs = find_layers(model)
    linear = [r for r in refs if isinstance(r.module, nn.Linear)]
    assert linear and all(r.channels_last and r.kind == "pointwise" for r in linear)
    x = torch.randn(1, 3, 64, 64)
    kept = spatial_layers(model, "a", refs, x)
    assert not any(r.name.startswith("classifier") for r in kept)  # the heads: no maps
    first = next(r for r in kept if r.channels_last)  # stage 1's first linear: 4 x expansion
    shapes = []
    from multidomain.interpret.layers import watching

    with watching([first], lambda _r, out: shapes.append(tuple(out.shape))), torch.no_grad():
        model(x, domain="a")
    assert shapes == [(1, 384, 16, 16)]
