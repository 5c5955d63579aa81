"""The soft-sharing stage end to end (issue 10): from a trained ``pointwise`` run, the
``adapt`` recipe with ``model.method=soft`` trains the targets' gates, norms, own last
pointwise and heads; every depthwise bank, every other pointwise and the source stay
bit-identical. Its evaluation draws each target domain's gates as a heat map."""

from __future__ import annotations

import json

import pytest

from engine_helpers import adapted_run, mini_root, once, read_tensors, tiny_config
from multidomain.cli import main
from multidomain.engine.eval_run import evaluate_run
from multidomain.engine.report import write_report
from multidomain.engine.train import run_training
from multidomain.models.packs import load_model
from multidomain.models.roles import named_parameter_info

pytestmark = pytest.mark.usefixtures("one_thread")


def soft_run(tmp_path_factory):
    """The soft stage (1 epoch) from :func:`adapted_run`, shared."""

    def build():
        config = tiny_config(
            mini_root(tmp_path_factory),
            "run.bn_guard=false",
            f"model.init={adapted_run(tmp_path_factory)}",
            "model.method=soft",
            recipe="adapt",
            domains=("digits", "textures"),
            epochs=1,
        )
        assert config.optim.train == ["gate", "norm", "pointwise", "head"]
        run_dir = tmp_path_factory.mktemp("soft") / "run"
        run_training(config, run_dir)
        return run_dir

    return once("soft", build)


def test_the_soft_stage_trains_from_the_pointwise_model(tmp_path_factory):
    adapted, soft = adapted_run(tmp_path_factory), soft_run(tmp_path_factory)
    before, after = load_model(adapted / "model"), load_model(soft / "model")
    assert after.config.method == "soft" and list(after.domains) == list(before.domains)
    old = dict(before.state_dict())
    for name, param, info in named_parameter_info(after):
        if name in old and (info.role == "depthwise" or info.domain in (None, "animals")):
            assert param.detach().equal(old[name]), name  # banks, shared, source: frozen
    gates = [n for n, _, i in named_parameter_info(after) if i.role == "gate"]
    assert gates and all(".animals." not in n for n in gates)  # the source has no gate
    assert read_tensors(soft / "model")  # a saved, loadable model


def test_eval_of_a_soft_run_draws_each_target_domains_gates(tmp_path_factory, tmp_path, capsys):
    run = soft_run(tmp_path_factory)
    assert main(["eval", "--run", str(run), "--split", "val", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "eval.json").read_text())
    assert set(report["gates"]) == {"digits", "textures"}  # the source has no gate
    for domain, entry in report["gates"].items():
        assert entry["banks"] == ["animals", "digits", "textures"]
        assert len(entry["layers"]) == len(entry["mean_weight"]) == 25  # the stem too
        assert entry["images"] == report["domains"][domain]["images"]
        for row in entry["mean_weight"]:
            assert sum(row) == pytest.approx(1.0, abs=1e-6) and min(row) > 0
        png = tmp_path / report["gate_maps"][domain]
        assert png.read_bytes().startswith(b"\x89PNG")
        assert f"gate heat map: {png}" in printed
    rows = [tuple(r) for e in report["gates"].values() for r in e["mean_weight"]]
    assert len(set(rows)) > 1  # per domain and layer, not one constant
    (tmp_path / "report").mkdir()
    text = write_report(tmp_path / "report", report, {}).read_text()
    assert "![gates of digits](gates-digits.png)" in text
    assert (tmp_path / "report" / "gates-textures.png").is_file()


def test_eval_of_a_run_without_soft_sharing_draws_no_gates(tmp_path_factory, tmp_path):
    report = evaluate_run(adapted_run(tmp_path_factory), "val", out=tmp_path)
    assert "gates" not in report and "gate_maps" not in report
    assert not list(tmp_path.glob("gates-*"))
    (tmp_path / "report").mkdir()
    text = write_report(tmp_path / "report", report, {}).read_text()
    assert "gates" not in text
