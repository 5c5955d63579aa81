"""One model configuration (the redesign issue, item 4): a ``source`` and a method with its
options, saved whole next to the weights; the run config's ``model`` section is the same spec
plus where the weights start; earlier key names still load; bad values are refused before a
run folder is written."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from multidomain.cli import main
from multidomain.engine.builders import build_model as build_run_model
from multidomain.engine.config import ModelSection, load_config
from multidomain.errors import ConfigError
from multidomain.models import ModelConfig, build_model, create_model
from multidomain.models import _registry as registry
from multidomain.models.config import ModelSpec
from multidomain.models.packs import load_model, save_model

BASE = ["data.domains=[digits]"]


def test_the_run_section_and_the_model_config_share_one_spec():
    spec = {f.name for f in dataclasses.fields(ModelSpec)}
    assert spec == {
        "source",
        "width",
        "method",
        "method_options",
        "channels_last",
        "source_options",
    }
    assert {f.name for f in dataclasses.fields(ModelSection)} == spec | {
        "init",
        "init_domain",
        "new_domains",
    }
    assert {f.name for f in dataclasses.fields(ModelConfig)} == spec | {"domains", "dropout"}


def test_a_saved_config_holds_the_source_and_the_resolved_method_options(tmp_path):
    model = create_model("resnet26_dw", {"a": 3}, width=0.125)
    save_model(model, tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["source"] == "resnet26_dw"
    assert saved["method"] == "pointwise"  # the model's default, written out
    assert saved["method_options"] == {"own_last_pointwise": True}  # defaults written out
    assert load_model(tmp_path / "m").config == model.config


def test_method_options_build_the_layers_and_are_checked():
    own = create_model("resnet26_dw", {"a": 3, "b": 3}, width=0.125)
    shared = create_model(
        "resnet26_dw", {"a": 3, "b": 3}, width=0.125, method_options={"own_last_pointwise": False}
    )
    assert sum(p.numel() for p in shared.parameters()) < sum(p.numel() for p in own.parameters())
    with pytest.raises(ConfigError, match=r"no option \['own_last'\].*own_last_pointwise"):
        create_model("resnet26_dw", {"a": 3}, method_options={"own_last": False})
    with pytest.raises(ConfigError, match="'none' has no option.*takes none"):
        create_model("resnet26_dw", {"a": 3}, "none", method_options={"own_last_pointwise": True})
    with pytest.raises(ConfigError, match="own_last_pointwise must be a bool"):
        create_model("resnet26_dw", {"a": 3}, method_options={"own_last_pointwise": "no"})


def test_earlier_key_names_load():
    old = {
        "name": "resnet26_dw",
        "domains": {"a": 3},
        "width": 0.125,
        "share": "pointwise",
        "own_last_pointwise": False,
        "dropout": {},
        "channels_last": True,
    }
    config = ModelConfig.from_dict(old)
    assert (config.source, config.method) == ("resnet26_dw", "pointwise")
    assert config.method_options == {"own_last_pointwise": False}
    for other, options in (("none", {}), ("all", {})):  # old files saved the flag for any method
        assert ModelConfig.from_dict({**old, "share": other}).method_options == options
    with pytest.raises(ConfigError, match="give method only"):
        ModelConfig.from_dict({**old, "method": "pointwise"})
    assert create_model("resnet26_dw", {"a": 3}, share="none").config.method == "none"


def test_run_configs_accept_the_earlier_keys_and_entries_of_mappings():
    config = load_config(
        None, [*BASE, "model.name=resnet26_std", "model.share=none", "model.width=0.5"]
    )
    assert (config.model.source, config.model.method) == ("resnet26_std", "none")
    config = load_config(None, [*BASE, "model.method_options.own_last_pointwise=false"])
    assert config.model.method_options == {"own_last_pointwise": False}
    config = load_config(None, [*BASE, "model.own_last_pointwise=false"])
    assert config.model.method_options == {"own_last_pointwise": False}


def test_a_shipped_recipe_overridden_with_the_earlier_name_takes_the_override():
    config = load_config(None, ["model.method=pointwise", *BASE, "model.share=depthwise"])
    assert config.model.method == "depthwise"


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("model.method_options={bogus: 1}", "model.method_options"),
        ("model.method_options.own_last_pointwise=7", "own_last_pointwise must be a bool"),
        ("model.source=torchvision:mobilenet_v9", "model.source"),  # no such torchvision model
        ("model.method_options=3", "model.method_options"),
    ],
)
def test_bad_model_settings_exit_2_before_the_run_folder_exists(tmp_path, capsys, setting, named):
    out = tmp_path / "run"
    args = ["train", "--config", "mini/pretrain", "--out", str(out)]
    for item in (f"data.root={tmp_path / 'no-data'}", "data.prepare_offline=false", setting):
        args += ["--set", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert named in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_an_unknown_source_prefix_names_the_registered_ones():
    with pytest.raises(ConfigError, match=r"no source 'keras' is registered.*timm.*resnet26_dw"):
        create_model("keras:mobilenet", {"a": 3})


def test_a_registered_source_is_rebuilt_from_its_saved_config(tmp_path, monkeypatch):
    """``PREFIX:NAME`` sources (the converter's ``torchvision:``/``timm:``) dispatch through
    the registry, so ``load_model`` rebuilds them from config.json alone."""
    built = []

    def narrow(config):  # a stand-in source: NAME is a width for a resnet26_dw
        built.append(config.source)
        inner = dataclasses.replace(config, source="resnet26_dw", width=float(config.source[4:]))
        model = build_model(inner)
        model.config = config
        return model

    monkeypatch.setattr(registry, "_SOURCES", registry._SOURCES.copy())
    registry.register_source("toy", narrow, default_method="depthwise")
    with pytest.raises(ConfigError, match="'toy' is already registered"):
        registry.register_source("toy", narrow, default_method="depthwise")
    model = create_model("toy:0.125", {"a": 3})
    assert model.config.method == "depthwise"
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert built == ["toy:0.125", "toy:0.125"]
    x = torch.randn(2, 3, 16, 16)
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(x, "a"), loaded(x, "a"))


def test_adapting_with_other_method_options_reshares_the_pretrained_model(tmp_path):
    """``model.method_options`` that differ from the pretrained model's re-share it (the last
    pointwise becomes shared here), keeping the source domain's function."""
    pretrained = create_model("resnet26_dw", {"src": 3}, width=0.125).eval()
    save_model(pretrained, tmp_path / "init")

    class Benchmark:
        def domain(self, name):
            return type("Domain", (), {"num_classes": 4})()

    config = load_config(
        None,
        [
            "recipe=adapt",
            "data.domains=[tgt]",
            "model.width=0.125",
            f"model.init={tmp_path / 'init'}",
            "model.method_options.own_last_pointwise=false",
        ],
    )
    model = build_run_model(config, Benchmark()).eval()
    assert model.config.method_options == {"own_last_pointwise": False}
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x, "src"), pretrained(x, "src"), atol=1e-6)


def test_a_method_names_what_a_target_trains_by_default(monkeypatch):
    from multidomain.models import methods

    monkeypatch.setattr(methods, "_METHODS", methods._METHODS.copy())
    base = methods.get_method("pointwise")
    methods.register_method(
        methods.Method("frozen_dw", base.make_conv, base.kinds, base.options, ("norm", "head"))
    )
    adapt = ["recipe=adapt", *BASE, "model.init=somewhere"]
    assert load_config(None, [*adapt, "model.method=frozen_dw"]).optim.train == ["norm", "head"]
    general = load_config(None, [*adapt, "model.method=pointwise"]).optim.train
    assert "depthwise" in general
    assert load_config(None, [*BASE, "model.method=frozen_dw"]).optim.train == ["all"]
    explicit = load_config(None, [*adapt, "model.method=frozen_dw", "optim.train=[head]"])
    assert explicit.optim.train == ["head"]
