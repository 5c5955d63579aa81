"""Mini-decathlon version 2 (issue 11): the emoji source, its targets, the version record, the
licence record, and baselines keyed by data version."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_helpers import run_cli
from multidomain.data.benchmark import load_benchmark
from multidomain.data.devkit import read_json
from multidomain.data.offline import (
    SOURCE_DOMAINS,
    VERSIONS,
    baselines,
    characters,
    emoji,
    spec_by_name,
    symbols,
)
from multidomain.data.offline.builder import COMPLETE_MARKER, prepare_offline
from multidomain.engine.config import DataConfig, load_config
from multidomain.engine.data_setup import resolve_root
from multidomain.errors import ConfigError

SMALL_V2 = {"version": 2, "image_size": 16, "max_per_class": 3, "seed": 0}
DOMAINS = ["emoji", "faces", "photos", "symbols"]


@pytest.fixture
def few_emoji(monkeypatch):
    """A small class subset of the source, so that a build takes seconds."""
    codes = emoji.emoji_codes()[:24]
    monkeypatch.setattr(emoji, "emoji_codes", lambda root=None: codes)
    return codes


def _tree_bytes(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_two_version_2_builds_with_one_seed_are_byte_identical(few_emoji, tmp_path):
    first = prepare_offline(tmp_path / "a", domains=DOMAINS, **SMALL_V2)
    second = prepare_offline(tmp_path / "b", domains=DOMAINS, **SMALL_V2)
    one, two = _tree_bytes(first), _tree_bytes(second)
    assert len(one) > 4 * 3 and one.keys() == two.keys()
    assert [name for name in one if one[name] != two[name]] == []
    other = prepare_offline(tmp_path / "c", domains=["emoji"], **{**SMALL_V2, "seed": 1})
    name = "annotations/emoji_train.json"
    images = sorted(p for p in one if p.startswith("data/emoji/train/"))
    assert (other / images[0]).read_bytes() != one[images[0]]  # the seed draws the jitter
    assert json.loads(one[name])["categories"] == read_json(other / name)["categories"]


def test_version_2_records_its_version_licences_and_source(few_emoji, tmp_path):
    root = prepare_offline(tmp_path / "t", domains=DOMAINS, **SMALL_V2)
    content = read_json(root / "benchmark.json")
    assert content["version"] == 2 and content["source_domain"] == "emoji"
    assert read_json(root / COMPLETE_MARKER)["params"]["version"] == 2
    assert "CC BY-SA 4.0" in content["domains"]["emoji"]["licence"]
    assert content["domains"]["emoji"]["num_classes"] == len(few_emoji)
    for name, entry in content["domains"].items():
        assert isinstance(entry["licence"], str) and entry["licence"].strip(), name
    assert load_benchmark(root).source_domain == "emoji"


def test_version_1_records_its_version_and_stays_the_default(tmp_path):
    root = prepare_offline(tmp_path / "t", max_per_class=3, domains=["faces"])
    content = read_json(root / "benchmark.json")
    assert content["version"] == 1 and "licence" not in content["domains"]["faces"]
    assert read_json(root / COMPLETE_MARKER)["params"]["version"] == 1


def test_baselines_are_keyed_by_data_version(tmp_path, monkeypatch):
    v1 = baselines.shipped_baselines(1, 36, 0, None)  # each version's demo build has its own
    v2 = baselines.shipped_baselines(2, 36, 0, None)
    assert "animals" in v1 and "emoji" in v2 and "animals" not in v2
    content = {"domains": {"digits": {"baseline_accuracy": None}}}
    assert baselines.fill_shipped_baselines(content, 2, 36, 0, None)
    assert content["domains"]["digits"]["baseline_accuracy"] == v2["digits"] != v1["digits"]
    content = {"domains": {"digits": {"baseline_accuracy": None}}}
    assert not baselines.fill_shipped_baselines(content, 2, 72, 0, None)  # another image size
    assert content["domains"]["digits"]["baseline_accuracy"] is None
    # an entry that names no version matches no build, not every version's
    unkeyed = tmp_path / "baselines.json"
    entry = {"image_size": 36, "seed": 0, "baseline_accuracy": {"digits": 50.0}}
    unkeyed.write_text(json.dumps({"builds": [entry]}))
    monkeypatch.setattr(baselines, "SHIPPED", unkeyed)
    assert baselines.shipped_baselines(1, 36, 0, None) == {}
    unkeyed.write_text(json.dumps({"builds": [{**entry, "data_version": 2}]}))
    assert baselines.shipped_baselines(2, 36, 0, None) == {"digits": 50.0}
    assert baselines.shipped_baselines(1, 36, 0, None) == {}


def test_the_source_meets_the_design_criteria():
    codes = emoji.emoji_codes()
    train, _, _ = spec_by_name("emoji", 2).split
    assert len(codes) >= 500 and len(codes) * train >= 20_000
    left_out = [0x30, 0x41, 0x1F1E6, 0x1F1FF, 0x1F3FB, 0x20E3, 0x1F170, 0xE000]
    assert not set(left_out) & set(codes)  # digits, letters, regional indicators, skin tones
    assert 0x1F600 in codes and SOURCE_DOMAINS[2] == "emoji"


def test_the_targets_meet_the_design_criteria():
    names = [spec.name for spec in VERSIONS[2]]
    assert names == sorted(set(names))
    targets = [spec for spec in VERSIONS[2] if spec.name != "emoji"]
    assert len(targets) >= 7
    classes = {
        "characters": len(characters.distinct_glyphs(characters.ALPHABET_FONTS)),
        "symbols": len(symbols.load(np.random.default_rng(0), 1, 8).class_names),
        "faces": 2,
        "letters": 26,
    }
    assert classes["characters"] >= 100 and classes["symbols"] >= 100
    for name, count in classes.items():
        train, _, test = spec_by_name(name, 2).split
        assert count * test >= 1000 or name == "faces", name  # faces: all 200 that exist
        if name == "letters":
            assert count * train < 1000


def test_one_emoji_rendering_is_in_colour():
    rng = np.random.default_rng(0)
    root = emoji.openmoji_root()
    image = emoji.render(0x1F600, str(root / "font" / "glyf_colr0.ttf"), 32, rng)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    channels = image.reshape(-1, 3).astype(int)
    assert np.abs(channels[:, 0] - channels[:, 2]).max() > 40  # not grey


def test_unknown_versions_are_refused_with_the_valid_ones(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match="choose one of 1, 2"):
        prepare_offline(tmp_path / "t", version=3)
    argv = ["data", "prepare-offline", "--out", str(tmp_path / "m"), "--version", "9"]
    assert run_cli(argv, monkeypatch) == 2
    assert "version 9" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="data.offline_version"):
        load_config(None, ["data.offline_version=5"])


def test_a_root_of_another_version_is_refused(tmp_path):
    root = prepare_offline(tmp_path / "t", max_per_class=3, domains=["faces"])
    data = DataConfig(root=str(root), prepare_offline=True, offline_image_size=72)
    assert resolve_root(data) == root
    data.offline_version = 2
    with pytest.raises(ConfigError, match="holds mini-decathlon version 1"):
        resolve_root(data)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("name", ["pretrain", "adapt", "finetune"])
def test_each_version_has_recipes_that_build_and_train_on_it(version, name, tmp_path):
    from multidomain.engine.demo import recipe
    from multidomain.engine.recipes import resolve_config_path

    init = [] if name == "pretrain" else [f"model.init={tmp_path}"]
    config = load_config(resolve_config_path(recipe(name, version)), init)
    assert config.data.offline_version == version and config.data.prepare_offline
    built = {spec.name for spec in VERSIONS[version]}
    assert set(config.data.domains) <= built
    if name == "pretrain":
        assert config.data.domains == [SOURCE_DOMAINS[version]]
    else:
        assert SOURCE_DOMAINS[version] not in config.data.domains
        assert len(config.data.domains) >= (7 if version == 2 else 6)


def test_the_default_demo_is_version_2_and_runs_end_to_end(
    few_emoji, tmp_path, monkeypatch, capsys
):
    from multidomain.cli import main
    from multidomain.engine import demo

    monkeypatch.setattr(demo, "QUICK", [*demo.QUICK, "data.batch_size=4", "run.threads=1"])
    targets = ["characters", "digits", "faces", "letters", "photos", "symbols", "textures"]
    build = {**SMALL_V2, "max_per_class": 12}
    data = prepare_offline(tmp_path / "data", domains=["emoji", *targets], **build)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--data", str(data)]) == 0
    report = read_json(out / "adapt" / "eval.json")
    assert sorted(report["domains"]) == sorted(["emoji", *targets])
    assert load_config(out / "adapt" / "config.yaml").data.offline_version == 2
    assert (out / "pretrain" / "model" / "config.json").is_file()  # --quick pretrains its own
    assert "report.md" in capsys.readouterr().out
