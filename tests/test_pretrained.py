"""Shipped pretrained source weights (issue 11): ``model.init=shipped:NAME``, the rebuild command
``multidomain pretrained build`` (bit-identical at the recorded thread count), the demo starting
from them, and baselines averaged over seeds."""

from __future__ import annotations

import shutil

import pytest
import yaml

from engine_helpers import (
    TINY,
    assert_same_tensors,
    mini_root,
    one_torch_thread,
    pretrained_run,
    read_tensors,
    tiny_config,
)
from multidomain.cli import main
from multidomain.engine import baseline, demo, pretrained
from multidomain.engine.builders import resolve_model_dir
from multidomain.engine.config import load_config
from multidomain.engine.recipes import resolve_config_path
from multidomain.engine.train import run_training
from multidomain.errors import ConfigError
from multidomain.io import checksum_problems, read_json
from multidomain.models.packs import load_model

# A tiny pretraining (the recipe's backbone, width 1/8, one epoch on the tiny tree's animals).
TINY_BUILD = [*TINY, "optim.epochs=1", "run.bn_guard=false"]


@pytest.fixture
def shipped(tmp_path, monkeypatch, tmp_path_factory):
    """A package weights folder holding the tiny pretraining as ``mini1-resnet26_dw``."""
    root = tmp_path / "weights"
    shutil.copytree(pretrained_run(tmp_path_factory) / "model", root / "mini1-resnet26_dw")
    monkeypatch.setattr(pretrained, "shipped_root", lambda: root)
    return root


def test_the_package_ships_both_backbones_for_version_2_with_their_provenance():
    """Both backbones' plain pretraining, and the standard one with series adapters in place
    (the ``series`` row's start, Rebuffi's protocol)."""
    shipped = ["mini2-resnet26_dw", "mini2-resnet26_std", "mini2-resnet26_std-series"]
    assert pretrained.list_shipped() == shipped
    adapt = yaml.safe_load(resolve_config_path("mini2/adapt").read_text())["model"]
    for name in pretrained.list_shipped():
        folder = resolve_model_dir(pretrained.SHIPPED_PREFIX + name)
        provenance = read_json(folder / pretrained.PROVENANCE_FILE)
        assert provenance["threads"] == 1 and provenance["torch"] and provenance["cpu"]
        listed = read_json(folder / "checksums.json")["files"]
        assert {k: listed[k] for k in provenance["sha256"]} == provenance["sha256"]
        model = load_model(folder)  # verifies every file against checksums.json
        assert name == pretrained.shipped_name(2, model.config.source, model.config.method)
        assert model.domains == {"emoji": 1406}
        assert model.config.width == adapt["width"]


def test_an_unknown_shipped_name_is_a_config_error_listing_the_shipped(shipped):
    with pytest.raises(ConfigError, match="shipped:mini1-resnet26_dw"):
        resolve_model_dir("shipped:mini9-nothing")
    assert resolve_model_dir("shipped:mini1-resnet26_dw") == shipped / "mini1-resnet26_dw"


def test_a_run_starts_from_shipped_weights_and_keeps_the_name(shipped, tmp_path_factory, tmp_path):
    config = tiny_config(
        mini_root(tmp_path_factory),
        "model.init=shipped:mini1-resnet26_dw",
        "run.bn_guard=false",
        recipe="adapt",
        domains=("digits",),
        epochs=1,
    )
    with one_torch_thread():
        run_training(config, tmp_path / "run")
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert saved.model.init == "shipped:mini1-resnet26_dw"  # a name, not made a path
    # the pointwise method froze the shared part: the run's shared weights are the shipped ones
    assert_same_tensors(_shared(shipped / "mini1-resnet26_dw"), _shared(tmp_path / "run" / "model"))


def _shared(folder):
    return {k: v for k, v in read_tensors(folder).items() if k.startswith("shared.safetensors:")}


def test_a_rebuild_at_the_recorded_thread_count_is_bit_identical(tmp_path, tmp_path_factory):
    root = mini_root(tmp_path_factory)
    builds = []
    for name in ("a", "b"):
        with one_torch_thread():
            built = pretrained.build_source_weights(
                1, "resnet26_dw", tmp_path / name, root, 1, TINY_BUILD
            )
        builds.append((tmp_path / name / "mini1-resnet26_dw", built))
    (first, one), (second, two) = builds
    assert one["sha256"] == two["sha256"] and one["sha256"]
    assert_same_tensors(read_tensors(first), read_tensors(second))
    assert one["threads"] == 1 and "--threads 1" in one["command"]
    assert one["source_validation"].keys() == {"animals"}
    assert checksum_problems(first) == []
    # rebuilding into a finished folder reuses it
    assert (
        pretrained.build_source_weights(1, "resnet26_dw", tmp_path / "a", root, 1, TINY_BUILD)
        == one
    )


def test_build_pretrains_under_method_and_set_values_and_names_the_folder(
    tmp_path, tmp_path_factory, capsys
):
    """``pretrained build --method series --set ...``: the series-adapter row's source network
    (Rebuffi's protocol), shipped as ``miniV-SOURCE-METHOD``; ``--set`` values reach the recipe
    and the provenance."""
    root = mini_root(tmp_path_factory)
    args = ["pretrained", "build", "--version", "1", "--source", "resnet26_std"]
    args += ["--method", "series", "--data", str(root), "--out", str(tmp_path)]
    with one_torch_thread():
        assert main(args + [arg for value in TINY_BUILD for arg in ("--set", value)]) == 0
    folder = tmp_path / "mini1-resnet26_std-series"
    model = load_model(folder)
    assert (model.config.source, model.config.method) == ("resnet26_std", "series")
    assert model.config.width == 0.125  # the --set values were applied
    provenance = read_json(folder / pretrained.PROVENANCE_FILE)
    assert (
        "--method series" in provenance["command"]
        and "--set model.width=0.125" in (provenance["command"])
    )
    assert pretrained.shipped_name(1, "resnet26_std", "all") == "mini1-resnet26_std"


def test_pretrained_list_prints_the_shipped_folders(capsys):
    assert main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out
    assert "shipped:mini2-resnet26_dw" in out and "shipped:mini2-resnet26_std" in out


def test_the_demo_starts_from_shipped_weights_unless_asked_to_pretrain(
    shipped, tmp_path, monkeypatch
):
    trained = []
    monkeypatch.setattr(demo, "run_stage", lambda config, run_dir: trained.append(run_dir))
    name = demo._source_init(tmp_path, None, 1, [], pretrain=False)
    assert name == "shipped:mini1-resnet26_dw" and trained == []
    assert demo._source_init(tmp_path, None, 1, [], pretrain=True) == str(tmp_path / "pretrain")
    assert trained == [tmp_path / "pretrain"]


def test_baselines_are_the_mean_over_seeds_with_their_spread(
    tmp_path, tmp_path_factory, monkeypatch
):
    tree = shutil.copytree(mini_root(tmp_path_factory), tmp_path / "tree")  # baselines get written
    tiny = [*TINY_BUILD, "data.domains=[animals, digits]", "data.batch_size=8"]
    real_stage_config = baseline.stage_config
    monkeypatch.setattr(
        baseline,
        "stage_config",
        lambda name, root, extra: real_stage_config(name, root, [*extra, *tiny]),
    )
    with one_torch_thread():
        entry = baseline.measure_baselines(
            tmp_path / "out", tree, pretrained_run(tmp_path_factory), version=1, seeds=2
        )
    runs = [tmp_path / "out" / "finetune", tmp_path / "out" / "finetune-s1"]
    reports = [read_json(run / "eval.json") for run in runs]
    assert entry["run_seeds"] == [0, 1]
    for domain in ("animals", "digits"):
        values = [r["domains"][domain]["accuracy"] for r in reports]
        assert entry["baseline_accuracy"][domain] == round(sum(values) / 2, 2)
        assert entry["baseline_accuracy_std"][domain] == round(
            abs(values[0] - values[1]) / 2**0.5, 2
        )
    written = read_json(tree / "benchmark.json")["domains"]["digits"]["baseline_accuracy"]
    assert written == pytest.approx(entry["baseline_accuracy"]["digits"], abs=0.005)
