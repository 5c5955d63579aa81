"""Every setting is checked before anything is written: a wrongly typed or out-of-range value,
an unknown key, YAML that does not parse, a missing ``model.init``, each ends in ``ConfigError``
naming the key, the bad value and what is expected; ``multidomain train`` prints it on one line,
exits 2 and creates nothing (issue 8, section 3)."""

from __future__ import annotations

import json
import re

import pytest

from multidomain.cli import main
from multidomain.engine.config import DataConfig, OptimConfig, RunConfig, load_config
from multidomain.errors import ConfigError

BASE = ["data.domains=[digits]"]

# (key, value as typed after --set KEY=, text the message must show for the value)
BAD_SETTINGS = [
    ("optim.momentum", "abc", "'abc'"),
    ("optim.momentum", "1.5", "1.5"),
    ("optim.momentum", "true", "True"),
    ("model.width", "abc", "'abc'"),
    ("model.width", "0", "0"),
    ("data.batch_size", "2.5", "2.5"),
    ("data.batch_size", "true", "True"),
    ("data.eval_batch_size", "0", "0"),
    ("optim.epochs", "2.5", "2.5"),
    ("optim.epochs", "0", "0"),
    ("optim.weight_decay", "-1", "-1"),
    ("optim.weight_decay_per_domain", "{digits: -1}", "{'digits': -1}"),
    ("optim.weight_decay_per_domain", "[1]", "[1]"),
    ("optim.dropout_per_domain", "{digits: 1}", "{'digits': 1}"),
    ("optim.lr", "0", "0"),
    ("optim.lr", ".inf", "inf"),
    ("optim.lr_gamma", "0", "0"),
    ("optim.lr_milestones", "[0]", "[0]"),
    ("optim.lr_milestones", "[5, 3]", "[5, 3]"),
    ("optim.lr_milestones", "[2.5]", "[2.5]"),
    ("optim.lr_milestones", "5", "5"),
    ("optim.train_norm", "1", "1"),
    ("run.max_steps", "0", "0"),
    ("run.max_steps", "1.5", "1.5"),
    ("run.log_every", "0", "0"),
    ("run.checkpoint_every", "0", "0"),
    ("run.device", "tpu", "'tpu'"),
    ("run.device", "cuda:x", "'cuda:x'"),
    ("run.device", "0", "0"),
    ("run.threads", "0", "0"),
    ("run.seed", "-1", "-1"),
    ("run.precision", "fp8", "'fp8'"),
    ("run.schedule", "random", "'random'"),
    ("run.progress", "maybe", "'maybe'"),
    ("data.root", "", "None"),
    ("data.root", "''", "''"),
    ("data.root", "[a]", "['a']"),
    ("data.domains", "digits", "'digits'"),
    ("data.domains", "[]", "[]"),
    ("data.domains", "[digits, digits]", "['digits', 'digits']"),
    ("data.domains", "['']", "['']"),
    ("data.domains", "[1]", "[1]"),
    ("data.workers", "-1", "-1"),
    ("data.protocol", "all", "'all'"),
    ("data.cache_limit_gb", "0", "0"),
    ("data.train_per_class", "{emoji: 0}", "{'emoji': 0}"),
    ("data.train_per_class", "2", "2"),
    ("data.offline_image_size", "4", "4"),
    ("model.source", "resnet26", "'resnet26'"),
    ("model.source", "torchvision:x", "'torchvision:x'"),
    ("model.method", "some", "'some'"),
    ("model.init", "''", "''"),
    ("model.init_domain", "7", "7"),
    ("recipe", "finetune", "'finetune'"),
]


def train_args(out, *settings: str) -> list[str]:
    """``train`` on data that does not exist: a setting wrongly accepted fails fast, not trains."""
    args = ["train", "--config", "mini/pretrain", "--out", str(out)]
    safe = [f"data.root={out.parent / 'no-data'}", "data.prepare_offline=false"]
    for setting in [*safe, *settings]:
        args += ["--set", setting]
    return args


def one_error_line(capsys, command: str = "train") -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"multidomain {command}: error: "), err
    return err


@pytest.mark.parametrize(("key", "value", "shown"), BAD_SETTINGS)
def test_a_bad_setting_names_key_and_value(key, value, shown):
    with pytest.raises(ConfigError) as raised:
        load_config(None, [*BASE, f"{key}={value}"])
    message = str(raised.value)
    assert key in message and f"got {shown}" in message
    assert "must be" in message  # says what is expected


@pytest.mark.parametrize(("key", "value", "shown"), BAD_SETTINGS)
def test_train_with_a_bad_setting_exits_2_and_creates_nothing(tmp_path, capsys, key, value, shown):
    out = tmp_path / "run"
    assert main(train_args(out, f"{key}={value}")) == 2
    assert key in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    "setting",
    [
        "run.device=cuda:1",
        "run.device=mps",
        "run.device=cpu",
        "run.threads=2",
        "run.max_steps=null",
        "optim.momentum=0",
        "optim.momentum=1",
        "optim.weight_decay=0",
        "model.width=1",
        "data.workers=0",
        "model.method=null",
        "optim.dropout_per_domain={digits: 0.5}",
        "optim.lr_milestones=[2, 4]",
    ],
)
def test_good_settings_are_accepted(setting):
    load_config(None, [*BASE, setting])


def test_threads_is_a_run_setting_defaulting_to_torch():
    assert load_config(None, BASE).run.threads is None
    assert load_config(None, [*BASE, "run.threads=3"]).run.threads == 3


def test_sections_built_in_python_are_checked_too():
    with pytest.raises(ConfigError, match=r"optim\.momentum .*got 'abc'"):
        OptimConfig(momentum="abc")
    with pytest.raises(ConfigError, match=r"data\.batch_size .*got 2\.5"):
        DataConfig(batch_size=2.5)
    with pytest.raises(ConfigError, match=r"run\.device .*got 'tpu'"):
        RunConfig(device="tpu")


def test_config_errors_stay_value_errors_for_old_callers():
    with pytest.raises(ValueError, match=r"optim\.lrr"):
        load_config(None, [*BASE, "optim.lrr=1"])


def test_unknown_keys_and_malformed_set_are_config_errors():
    with pytest.raises(ConfigError, match=r"optim\.lrr"):
        load_config(None, [*BASE, "optim.lrr=1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, [*BASE, "optim.lr"])
    with pytest.raises(ConfigError, match=r"'a\.b\.c'"):
        load_config(None, [*BASE, "a.b.c=1"])


def test_a_yaml_error_in_a_set_value_names_the_setting(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"--set optim\.lr_milestones=\[1,"):
        load_config(None, [*BASE, "optim.lr_milestones=[1,"])
    assert main(train_args(tmp_path / "run", "optim.lr_milestones=[1,")) == 2
    assert "optim.lr_milestones" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_a_yaml_error_in_a_config_file_names_the_file(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("optim:\n  lr: [0.1\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(path)
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(out)]) == 2  # fails parsing
    assert "broken.yaml" in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("text", ["- a\n- b\n", "just words\n", "7\n"])
def test_a_config_that_is_not_a_mapping_is_a_config_error(tmp_path, text):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="list.yaml"):
        load_config(path)


@pytest.mark.parametrize("section", ["[1, 2]", "5", "words"])
def test_a_section_that_is_not_a_mapping_is_a_config_error(tmp_path, section):
    path = tmp_path / "run.yaml"
    path.write_text(f"data: {{domains: [digits]}}\noptim: {section}\n")
    with pytest.raises(ConfigError, match="optim"):
        load_config(path)


def test_a_missing_config_file_is_a_config_error_and_still_file_not_found(tmp_path, capsys):
    with pytest.raises(ConfigError, match="nosuch.yaml"):
        load_config(tmp_path / "nosuch.yaml")
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "nosuch.yaml")
    assert main(["train", "--config", "nosuch/recipe", "--out", str(tmp_path / "r")]) == 2
    assert "nosuch/recipe" in one_error_line(capsys)


def fake_model_folder(folder):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"name": "resnet26_dw"}))
    return folder


def adapt_args(out, init) -> list[str]:
    args = ["train", "--config", "mini/adapt", "--out", str(out)]
    settings = [f"data.root={out.parent / 'no-data'}", "data.prepare_offline=false"]
    for setting in [*settings, f"model.init={init}"]:
        args += ["--set", setting]
    return args


@pytest.mark.parametrize("kind", ["missing", "no model inside", "a file"])
def test_a_bad_model_init_is_refused_before_the_run_folder_exists(tmp_path, capsys, kind):
    init = tmp_path / "pretrain"
    if kind == "no model inside":
        (init / "checkpoints").mkdir(parents=True)
    elif kind == "a file":
        init.write_text("not a run")
    out = tmp_path / "adapt"
    assert main(adapt_args(out, init)) == 2
    err = one_error_line(capsys)
    assert "model.init" in err and str(init) in err and "model/config.json" in err
    assert not out.exists()


def test_a_model_init_run_or_model_folder_passes_the_check(tmp_path):
    from multidomain.engine.config import check_model_init

    run = tmp_path / "run"
    fake_model_folder(run / "model")
    model = fake_model_folder(tmp_path / "model")
    for init in (run, model):
        config = load_config(None, ["recipe=adapt", *BASE, f"model.init={init}"])
        check_model_init(config)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"model\.init"):
        check_model_init(load_config(None, ["recipe=adapt", *BASE, f"model.init={empty}"]))


@pytest.mark.parametrize(
    ("spec", "shown"), [("a:0", "'a:0'"), ("svhn", "'svhn'"), ("1a:3", "'1a'"), ("a:2,a:3", "'a'")]
)
def test_a_bad_domain_list_is_a_config_error(spec, shown):
    from multidomain.domains import parse_domains

    with pytest.raises(ConfigError, match=re.escape(shown)):
        parse_domains(spec)
