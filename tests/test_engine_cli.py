"""The ``multidomain`` train / eval / demo commands end to end, and the errors a user meets:
each names the bad value and the valid choices, and the CLI prints it on one line (exit 2)."""

from __future__ import annotations

import json
import shutil

import pytest

from engine_helpers import (
    TINY,
    assert_same_tensors,
    mini_root,
    once,
    pretrained_run,
    read_tensors,
    snapshot_files,
    tiny_config,
)
from multidomain.cli import main
from multidomain.data.offline.builder import COMPLETE_MARKER, prepare_offline
from multidomain.data.submission import read_submission
from multidomain.engine.config import DataConfig, load_config
from multidomain.engine.data_setup import resolve_root
from multidomain.engine.train import run_training
from multidomain.io import read_json

# mini/pretrain made tiny; the tree is the session's, so never rebuilt here
CLI_SETTINGS = [*TINY, "optim.epochs=1", "data.prepare_offline=false"]
# every domain of the shipped mini/adapt recipe, plus its source
DEMO_DOMAINS = ["animals", "characters", "digits", "faces", "letters", "lowres-digits", "textures"]
# The demo keeps the recipes' batch size of 64: faces (2 classes) needs 55 images a class for
# 64 training images (60% train: 55 - 11 val - 11 test = 33 a class).
DEMO_PER_CLASS = 55


pytestmark = pytest.mark.usefixtures("one_thread")


def train_args(root, out, *settings: str) -> list[str]:
    args = ["train", "--config", "mini/pretrain", "--out", str(out)]
    for setting in [f"data.root={root}", *CLI_SETTINGS, *settings]:
        args += ["--set", setting]
    return args


def cli_run(tmp_path_factory):
    """``multidomain train --config mini/pretrain`` (tiny), shared."""

    def build():
        out = tmp_path_factory.mktemp("cli") / "run"
        assert main(train_args(mini_root(tmp_path_factory), out)) == 0
        return out

    return once("cli", build)


def test_train_then_eval_writes_a_complete_submission(root, tmp_path, tmp_path_factory, capsys):
    run_dir = shutil.copytree(cli_run(tmp_path_factory), tmp_path / "run")
    assert (run_dir / "model" / "config.json").is_file()
    saved = load_config(run_dir / "config.yaml")
    assert (saved.recipe, saved.model.width, saved.optim.epochs) == ("pretrain", 0.125, 1)
    capsys.readouterr()

    assert main(["eval", "--run", str(run_dir), "--split", "test"]) == 0

    assert "animals" in capsys.readouterr().out
    report = read_json(run_dir / "eval.json")
    assert report["split"] == "test" and list(report["domains"]) == ["animals"]
    test = json.loads((root / "annotations" / "animals_test.json").read_text())
    entries = json.loads((run_dir / "results.json").read_text())
    predictions = read_submission(run_dir / "results.json")  # raises on a repeated id
    assert len(entries) == len(predictions) == len(test["images"]) == 20
    assert set(predictions) == {image["id"] for image in test["images"]}
    assert set(predictions.values()) <= {c["id"] for c in test["categories"]}
    # the submission's labels are the evaluation's predictions: its accuracy is the report's
    truth = {a["image_id"]: a["category_id"] for a in test["annotations"]}
    correct = sum(predictions[i] == truth[i] for i in truth)
    assert 100.0 * correct / len(truth) == report["domains"]["animals"]["accuracy"]


def test_resume_with_set_continues_the_saved_run_exactly(root, tmp_path, tmp_path_factory):
    out = tmp_path / "run"
    assert main(train_args(root, out, "run.max_steps=3")) == 0
    assert not (out / "model").exists()

    # --set alone on --resume changes the saved config (only settings that may change)
    assert main(["train", "--out", str(out), "--resume", "--set", "run.max_steps=null"]) == 0

    reference = cli_run(tmp_path_factory)
    assert_same_tensors(read_tensors(reference / "model"), read_tensors(out / "model"))
    assert load_config(out / "config.yaml").run.max_steps is None


def test_resume_with_set_refuses_a_setting_that_changes_the_result(root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(root, out, "run.max_steps=1")) == 0
    capsys.readouterr()
    code = main(["train", "--out", str(out), "--resume", "--set", "optim.lr=0.5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "optim.lr: 0.1 -> 0.5" in err and len(err.strip().splitlines()) == 1


# -- errors ------------------------------------------------------------------------------------
def test_unknown_config_key_is_named_with_the_known_ones(root, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"optim\.lrr") as raised:
        tiny_config(root, "optim.lrr=0.1")
    assert "'lr'" in str(raised.value) and "'momentum'" in str(raised.value)

    code = main(
        [
            "train",
            "--config",
            "mini/pretrain",
            "--set",
            "optim.lrr=0.1",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("multidomain train: error:") and "optim.lrr" in err
    assert not (tmp_path / "x").exists()


def test_unknown_section_is_named(root):
    with pytest.raises(ValueError, match=r"'optimizer\.lr'.*SECTION"):
        tiny_config(root, "optimizer.lr=0.1")


def test_numbers_in_scientific_notation_are_numbers(root):
    # YAML 1.1 reads 1e-3 (no dot, or no exponent sign) as a string
    config = tiny_config(root, "optim.lr=1e-3", "optim.weight_decay=5e-4")
    assert config.optim.lr == 0.001 and config.optim.weight_decay == 0.0005
    with pytest.raises(ValueError, match=r"optim\.lr must be a number, got 'fast'"):
        tiny_config(root, "optim.lr=fast")


def test_resume_with_another_model_names_the_setting(root, tmp_path):
    run_dir = tmp_path / "run"
    run_training(tiny_config(root, "run.max_steps=1"), run_dir)
    with pytest.raises(ValueError, match=r"model\.width: 0\.125 -> 0\.25") as raised:
        run_training(tiny_config(root, "run.max_steps=1", "model.width=0.25"), run_dir, resume=True)
    assert "another --out" in str(raised.value)


def test_init_from_a_model_of_another_width_names_the_setting(root, tmp_path, tmp_path_factory):
    pretrain = pretrained_run(tmp_path_factory)
    config = tiny_config(
        root, "model.width=0.25", f"model.init={pretrain}", recipe="adapt", domains=("digits",)
    )
    with pytest.raises(ValueError, match=r"model\.width=0\.125"):
        run_training(config, tmp_path / "adapt")


def test_init_from_an_unfinished_run_says_what_is_missing(root, tmp_path):
    unfinished = tmp_path / "pretrain"
    run_training(tiny_config(root, "run.max_steps=1"), unfinished)
    config = tiny_config(root, f"model.init={unfinished}", recipe="adapt", domains=("digits",))
    with pytest.raises(FileNotFoundError, match="model/config.json"):
        run_training(config, tmp_path / "adapt")


def test_unknown_domain_lists_the_valid_ones(root, tmp_path):
    with pytest.raises(ValueError, match="'nosuch'") as raised:
        run_training(tiny_config(root, "data.domains=[nosuch]"), tmp_path / "run")
    assert "animals, digits, textures" in str(raised.value)


def test_new_run_in_a_used_folder_points_to_resume(root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_training(tiny_config(root, "run.max_steps=1"), run_dir)
    before = snapshot_files(run_dir)
    with pytest.raises(ValueError, match="--resume"):
        run_training(tiny_config(root), run_dir)
    assert main(train_args(root, run_dir)) == 2
    assert "--resume" in capsys.readouterr().err
    assert snapshot_files(run_dir) == before


def test_resume_of_an_empty_folder(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--resume"]) == 2
    assert "holds no run to resume" in capsys.readouterr().err


def test_eval_of_a_folder_without_a_model_exits_2_with_one_line(tmp_path, capsys):
    assert main(["eval", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("multidomain eval: error:") and "no finished model" in err


def test_prepare_offline_reuses_a_complete_build(root, tmp_path):
    # a recipe that builds its data when missing must not rebuild a smaller build it is given
    tree = shutil.copytree(root, tmp_path / "tree")
    before = snapshot_files(tree)
    assert resolve_root(DataConfig(root=str(tree), prepare_offline=True, offline_image_size=36))
    assert snapshot_files(tree) == before


# -- the demo ----------------------------------------------------------------------------------
def test_demo_quick_runs_the_pipeline_end_to_end(tmp_path, capsys):
    data = prepare_offline(
        tmp_path / "data", image_size=36, max_per_class=DEMO_PER_CLASS, domains=DEMO_DOMAINS
    )
    built = read_json(data / COMPLETE_MARKER)
    out = tmp_path / "demo"

    argv = ["demo", "--quick", "--version", "1", "--out", str(out), "--data", str(data)]
    assert main(argv) == 0

    for name in ("report.md", "accuracy.png", "parameters.png", "curves.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in ("eval.json", "results.json"):
        assert (out / "adapt" / name).is_file(), name
    report = read_json(out / "adapt" / "eval.json")
    assert sorted(report["domains"]) == DEMO_DOMAINS
    assert report["split"] == "test"
    test_ids = {
        image["id"]
        for domain in DEMO_DOMAINS
        for image in read_json(data / "annotations" / f"{domain}_test.json")["images"]
    }
    assert set(read_submission(out / "adapt" / "results.json")) == test_ids
    assert "report.md" in capsys.readouterr().out
    assert read_json(data / COMPLETE_MARKER) == built  # the given data was used, not rebuilt
    config = load_config(out / "adapt" / "config.yaml")
    assert config.model.width == 0.125 and config.model.init == str(out / "pretrain")


def test_a_corrupt_training_image_is_named_and_skip_bad_goes_past_it(root, tmp_path, capsys):
    tree = shutil.copytree(root, tmp_path / "tree")
    train_file = read_json(tree / "annotations" / "animals_train.json")["images"][0]["file_name"]
    (tree / train_file).write_bytes(b"not a jpeg")
    assert main(train_args(tree, tmp_path / "run")) == 3  # data error (exit-code table)
    err = capsys.readouterr().err
    assert train_file.split("/")[-1] in err and "--skip-bad" in err
    assert main([*train_args(tree, tmp_path / "run2"), "--skip-bad"]) == 0
    assert (tmp_path / "run2" / "model" / "config.json").is_file()
    # the skipped image is counted once, though every epoch meets it
    assert read_json(tmp_path / "run2" / "summary.json")["skipped_images"]["animals"] == 1
