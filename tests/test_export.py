"""``multidomain export``: one domain as ONNX (checked with ONNX Runtime) or a ``torch.export``
program loaded back in a fresh process, for every registered method, with a dynamic batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import tiny_model
from deploy_helpers import outputs_in_a_fresh_process
from multidomain.cli import main
from multidomain.engine.export import ATOL, OPSET, export_domain, run_onnx
from multidomain.models.cards import DomainCard, Preprocess
from multidomain.models.methods import list_methods, methods_for
from multidomain.models.packs import save_model

SRC = Path(__file__).resolve().parents[1] / "src"
BATCHES = (1, 5)  # the export's example batch is 2: both differ, so the batch is dynamic


def method_model(method: str):
    """A tiny model of ``method`` on the backbone it supports (separable first), its BN
    statistics set from data as training would (fresh ones leave some methods, series adapters
    among them, with logits in the hundreds, where float32 rounding alone exceeds 1e-4)."""
    name = "resnet26_dw" if method in methods_for("separable") else "resnet26_std"
    model = calibrated(tiny_model(name, method))
    preprocess = Preprocess("center_crop", (0.5, 0.4, 0.3), (0.2, 0.2, 0.2), 20, 16)
    model.cards["beta"] = DomainCard(("a", "b", "c"), preprocess)
    return model


@torch.no_grad()
def calibrated(model):
    """``model`` in eval mode with every domain's BN running statistics averaged over a few
    random batches (momentum None: a cumulative average)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    generator = torch.Generator().manual_seed(11)
    for domain in model.domains:
        for _ in range(3):
            model(torch.randn(8, 3, 20, 20, generator=generator), domain)
    return model.eval()


def inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return {f"x{b}": torch.randn(b, 3, 20, 20, generator=generator) for b in BATCHES}


def expected(model) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {k: model(x, "beta") for k, x in inputs().items()}


@pytest.mark.parametrize("method", list_methods())
def test_onnx_export_matches_the_model(method, tmp_path):
    import onnx

    model = method_model(method)
    info = export_domain(model, "beta", "onnx", tmp_path / "beta.onnx")
    assert info["opset"] == OPSET and info["classes"] == ["a", "b", "c"]
    opsets = {o.domain: o.version for o in onnx.load(tmp_path / "beta.onnx").opset_import}
    assert opsets[""] == OPSET
    run = run_onnx(tmp_path / "beta.onnx")
    for key, x in inputs().items():
        got = torch.as_tensor(run(x))
        assert got.shape == (x.shape[0], 3)
        torch.testing.assert_close(got, expected(model)[key], atol=ATOL, rtol=0)


def test_export_programs_load_in_a_fresh_process_and_match(tmp_path):
    """A ``.pt2`` of every method, loaded back by a new interpreter (one for all methods)."""
    for method in list_methods():
        model = method_model(method)
        export_domain(model, "beta", "export", tmp_path / f"{method}.pt2")
        save_file(expected(model), str(tmp_path / f"{method}.expected.safetensors"))
    save_file(inputs(), str(tmp_path / "inputs.safetensors"))
    outputs = outputs_in_a_fresh_process(tmp_path)
    for method in list_methods():
        got = outputs[method]
        want = load_file(tmp_path / f"{method}.expected.safetensors")
        for key in want:
            torch.testing.assert_close(got[key], want[key], atol=ATOL, rtol=0)


def test_export_cli_writes_the_file_and_its_description(tmp_path, capsys):
    save_model(method_model("pointwise"), tmp_path / "model")
    out = tmp_path / "beta.pt2"
    args = ["export", "--run", str(tmp_path / "model"), "--domain", "beta", "--out", str(out)]
    assert main([*args, "--format", "export"]) == 0
    info = json.loads((tmp_path / "beta.pt2.json").read_text())
    assert info["input"]["shape"] == ["batch", 3, 20, 20]
    assert info["preprocess"]["mean"] == [0.5, 0.4, 0.3]
    assert main([*args[:3], "--domain", "nope", "--out", str(out), "--format", "onnx"]) == 2
    assert "its domains: ['alpha', 'beta', 'gamma']" in capsys.readouterr().err
