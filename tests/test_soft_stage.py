"""The soft-sharing stage end to end (issue 10): from a trained ``pointwise`` run, the
``adapt`` recipe with ``model.method=soft`` trains the targets' gates, norms, own last
pointwise and heads; every depthwise bank, every other pointwise and the source stay
bit-identical."""

from __future__ import annotations

import pytest

from engine_helpers import adapted_run, mini_root, read_tensors, tiny_config
from multidomain.engine.train import run_training
from multidomain.models.packs import load_model
from multidomain.models.roles import named_parameter_info

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_soft_stage_trains_from_the_pointwise_model(tmp_path_factory, tmp_path):
    adapted = adapted_run(tmp_path_factory)
    config = tiny_config(
        mini_root(tmp_path_factory),
        "run.bn_guard=false",
        f"model.init={adapted}",
        "model.method=soft",
        recipe="adapt",
        domains=("digits", "textures"),
        epochs=1,
    )
    assert config.optim.train == ["gate", "norm", "pointwise", "head"]
    run_training(config, tmp_path / "soft")
    before, after = load_model(adapted / "model"), load_model(tmp_path / "soft" / "model")
    assert after.config.method == "soft" and list(after.domains) == list(before.domains)
    old = dict(before.state_dict())
    for name, param, info in named_parameter_info(after):
        if name in old and (info.role == "depthwise" or info.domain in (None, "animals")):
            assert param.detach().equal(old[name]), name  # banks, shared, source: frozen
    gates = [n for n, _, i in named_parameter_info(after) if i.role == "gate"]
    assert gates and all(".animals." not in n for n in gates)  # the source has no gate
    assert read_tensors(tmp_path / "soft" / "model")  # a saved, loadable model
