"""Converted models deployed like ours: ``multidomain export`` of one domain (ONNX checked with
ONNX Runtime, a ``.pt2`` program loaded back in a fresh process, both equal to the multi-domain
model), ``multidomain predict`` on a run trained from ``model.source: torchvision:...`` (a mixed
list equals per-domain predictions), and the BN-collapse guard acting during such a run."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from convert_helpers import SIZE, two_domains
from deploy_helpers import (
    assert_mixed_list_predicts_per_domain,
    outputs_in_a_fresh_process,
    split_images,
)
from engine_helpers import mini_root, once, tiny_config
from multidomain.cli import main
from multidomain.data.dataset import DecathlonDataset
from multidomain.engine import train
from multidomain.engine.bn_guard import domain_norms
from multidomain.engine.export import ATOL, OPSET, run_onnx
from multidomain.engine.logs import read_metrics
from multidomain.engine.train import run_training
from multidomain.models.cards import DomainCard, Preprocess
from multidomain.models.packs import load_model, save_model

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = "torchvision:mobilenet_v3_small"
# Export: depthwise + BN + hard-swish + SE (MobileNetV3), stochastic depth (EfficientNet),
# LayerNorm and per-domain layer scales (ConvNeXt), timm's BatchNormAct2d (timm MobileNetV3).
EXPORTED = [SMALL, "torchvision:efficientnet_b0", "torchvision:convnext_tiny"]
EXPORTED += ["timm:mobilenetv3_small_100"]
FORMATS = {"onnx": "onnx", "export": "pt2"}
CLASSES = ("v", "w", "x", "y", "z")  # domain b's 5 classes


def file_name(source: str) -> str:
    return source.replace(":", "-")


def inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return {f"x{b}": torch.randn(b, 3, SIZE, SIZE, generator=generator) for b in (1, 5)}


def exported(source: str, tmp_path_factory):
    """Domain b of ``source`` converted, saved, and exported by the CLI in both formats
    (built once per session): ``(folder, expected logits of the multi-domain model)``."""

    def build():
        _, model = two_domains(source)
        preprocess = Preprocess("center_crop", (0.5, 0.4, 0.3), (0.2, 0.2, 0.2), SIZE, SIZE)
        model.cards["b"] = DomainCard(CLASSES, preprocess)
        folder = tmp_path_factory.mktemp(file_name(source))
        save_model(model, folder / "model")
        for fmt, suffix in FORMATS.items():
            out = folder / f"{file_name(source)}.{suffix}"
            args = ["--run", folder / "model", "--domain", "b", "--format", fmt, "--out", out]
            assert main(["export", *map(str, args)]) == 0
        with torch.no_grad():
            want = {k: model(x, "b") for k, x in inputs().items()}
        return folder, want

    return once(f"export:{source}", build)


@pytest.mark.parametrize("source", EXPORTED)
def test_a_converted_domain_exports_to_onnx_equal_to_the_model(source, tmp_path_factory):
    import onnx

    folder, want = exported(source, tmp_path_factory)
    path = folder / f"{file_name(source)}.onnx"
    assert {o.domain: o.version for o in onnx.load(path).opset_import}[""] == OPSET
    info = json.loads(path.with_name(path.name + ".json").read_text())
    assert info["classes"] == list(CLASSES) and info["input"]["shape"] == ["batch", 3, 32, 32]
    run = run_onnx(path)
    for key, x in inputs().items():
        torch.testing.assert_close(torch.as_tensor(run(x)), want[key], atol=ATOL, rtol=0)


def test_converted_programs_load_in_a_fresh_process_and_match(tmp_path, tmp_path_factory):
    wanted = {}
    for source in EXPORTED:
        folder, wanted[file_name(source)] = exported(source, tmp_path_factory)
        program = f"{file_name(source)}.pt2"
        (tmp_path / program).write_bytes((folder / program).read_bytes())
    save_file(inputs(), str(tmp_path / "inputs.safetensors"))
    outputs = outputs_in_a_fresh_process(tmp_path)
    assert sorted(outputs) == sorted(wanted)
    for name, want in wanted.items():
        for key in want:
            torch.testing.assert_close(outputs[name][key], want[key], atol=ATOL, rtol=0)


def converted_run(tmp_path_factory):
    """A tiny joint run (animals, textures; one epoch) of ``model.source: SMALL``, shared."""

    def build():
        config = tiny_config(
            mini_root(tmp_path_factory),
            f"model.source={SMALL}",
            "model.width=1.0",
            "run.bn_guard=false",
            recipe="joint",
            domains=("animals", "textures"),
            epochs=1,
        )
        run_dir = tmp_path_factory.mktemp("converted") / "run"
        run_training(config, run_dir)
        return run_dir

    return once("converted-run", build)


def test_predict_on_a_converted_run_mixed_list_equals_per_domain(
    root, tmp_path, tmp_path_factory, capsys
):
    run = converted_run(tmp_path_factory)
    assert load_model(run / "model").config.source == SMALL
    rows = split_images(root, ("animals", "textures"), per_domain=4)
    mixed = assert_mixed_list_predicts_per_domain(capsys, run, rows, tmp_path / "list.csv")
    datasets = [DecathlonDataset(root, d, "test") for d in ("animals", "textures")]
    names = {c["name"] for dataset in datasets for c in dataset.categories}
    assert {c["class"] for r in mixed for c in r["top"]} <= names  # class names, not indices


def test_the_bn_guard_reestimates_a_converted_model_in_training(root, tmp_path, monkeypatch):
    """The guard's reaction to a collapse (forced: tiny runs never collapse) re-estimates the
    converted model's own BN statistics, and the model saved is the re-estimated one."""
    before, reestimated = {}, {}

    def reestimate(model, domain, *args):
        before[domain] = [n.running_var.clone() for n in domain_norms(model, domain)]
        used = reestimate_bn(model, domain, *args)
        reestimated[domain] = [n.running_var.clone() for n in domain_norms(model, domain)]
        return used

    reestimate_bn = train.reestimate_bn
    monkeypatch.setattr(train, "is_collapsed", lambda *_: True)
    monkeypatch.setattr(train, "reestimate_bn", reestimate)
    config = tiny_config(
        root, f"model.source={SMALL}", "model.width=1.0", domains=("textures",), epochs=1
    )
    run_training(config, tmp_path / "run")

    assert [e["domain"] for e in read_metrics(tmp_path / "run") if e["event"] == "bn_collapse"] == [
        "textures"
    ]
    saved = domain_norms(load_model(tmp_path / "run" / "model"), "textures")
    assert len(saved) == len(reestimated["textures"]) == 34  # MobileNetV3-Small's BN layers
    for norm, old, new in zip(saved, before["textures"], reestimated["textures"], strict=True):
        assert torch.equal(norm.running_var, new)
        assert not torch.equal(old, new)
