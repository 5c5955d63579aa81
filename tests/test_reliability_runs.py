"""The run folder is never trusted blindly (issue "Trust nothing on disk", section 1): a new run
goes only into a missing or empty folder, nothing is written before the request is checked, a
lost or damaged checkpoint pointer or checkpoint falls back to the newest intact one, a pointer
never leads out of the run, a smoke-test limit does not trap the run, the data root is stored
absolute and checked on resume, and one process at a time holds a run folder."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from engine_helpers import (
    assert_same_run_weights,
    leftovers,
    pretrained_run,
    snapshot_files,
    tiny_config,
)
from multidomain.cli import main
from multidomain.data.offline.builder import prepare_offline
from multidomain.engine import train as train_module
from multidomain.engine.checkpoint import LATEST, checkpoint_folders, latest_checkpoint
from multidomain.engine.config import load_config
from multidomain.engine.train import Trainer, run_training
from multidomain.errors import ConfigError, StorageError
from multidomain.io import read_json, write_json
from multidomain.locks import folder_lock

pytestmark = pytest.mark.usefixtures("one_thread")


def config(root, *overrides):
    """The configuration of the shared pretraining run (so it is the reference)."""
    return tiny_config(root, "run.bn_guard=false", *overrides)


def cli_train(root, out, *settings, resume=False) -> int:
    args = ["train", "--out", str(out)]
    if resume:
        args.append("--resume")
    else:
        args += ["--config", "mini/pretrain", "--set", f"data.root={root}"]
        settings = (
            "model.width=0.125",
            "data.batch_size=8",
            "data.eval_batch_size=32",
            "run.progress=false",
            "run.device=cpu",
            "optim.lr_milestones=[]",
            "optim.epochs=1",
            "data.prepare_offline=false",
            "data.domains=[animals]",
            *settings,
        )
    for setting in settings:
        args += ["--set", setting]
    return main(args)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# -- a new run goes only into a missing or empty folder ---------------------------------------
def test_out_into_a_folder_that_is_not_a_run_touches_nothing(root, tmp_path, capsys):
    project = tmp_path / "proj"
    (project / "model").mkdir(parents=True)
    (project / "checkpoints" / "old").mkdir(parents=True)
    (project / "model" / "README.txt").write_text("keep")
    (project / "checkpoints" / "old" / "best.pt").write_text("keep")
    (project / "summary.json").write_text("{}")
    before = snapshot_files(project)

    assert cli_train(root, project) == 2

    assert "not empty" in one_error_line(capsys)
    assert snapshot_files(project) == before
    assert sorted(p.name for p in project.iterdir()) == ["checkpoints", "model", "summary.json"]


def test_out_into_an_empty_folder_or_a_file(root, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_training(config(root, "run.max_steps=1"), empty) is None
    assert (empty / "config.yaml").is_file()

    a_file = tmp_path / "file"
    a_file.write_text("mine")
    assert cli_train(root, a_file) == 4
    assert "is a file" in one_error_line(capsys)
    assert a_file.read_text() == "mine"


def test_checkpoints_without_config_are_refused_on_resume(root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_training(config(root, "run.max_steps=2", "run.checkpoint_every=1"), run_dir)
    (run_dir / "config.yaml").unlink()
    before = snapshot_files(run_dir)

    assert cli_train(root, run_dir, "model.width=0.25", resume=True) == 2
    assert "no config.yaml" in one_error_line(capsys)
    assert cli_train(root, run_dir, "model.width=0.25") == 2  # nor as a new run
    assert snapshot_files(run_dir) == before


def test_a_setup_error_leaves_no_folder_and_the_corrected_command_runs(root, tmp_path, capsys):
    out = tmp_path / "run"
    # found only once the data is read: after the folder used to be created
    assert cli_train(root, out, "data.domains=[nosuch]") == 2
    assert "nosuch" in one_error_line(capsys)
    assert not out.exists()

    assert cli_train(root, out, "run.max_steps=1") == 0
    assert (out / "config.yaml").is_file()


# -- checkpoints: the pointer and the files are not trusted -----------------------------------
def test_lost_pointer_resumes_from_the_newest_checkpoint(root, tmp_path, tmp_path_factory, caplog):
    run_dir = tmp_path / "run"
    run_training(config(root, "run.max_steps=6", "run.checkpoint_every=2"), run_dir)
    (run_dir / "checkpoints" / LATEST).unlink()
    newest = checkpoint_folders(run_dir)[-1]
    assert newest.name == "step-00000006"

    run_training(None, run_dir, resume=True)

    assert "latest.json is missing" in caplog.text
    # resumed at step 6, not from scratch: the result is the uninterrupted run's
    assert_same_run_weights(pretrained_run(tmp_path_factory), run_dir)


def test_a_pointer_out_of_the_run_is_not_followed(root, tmp_path, tmp_path_factory, caplog):
    run_dir = tmp_path / "runs" / "run"
    run_training(config(root, "run.max_steps=4", "run.checkpoint_every=2"), run_dir)
    other = tmp_path / "other" / "step-00000004"
    shutil.copytree(latest_checkpoint(run_dir), other)
    write_json(run_dir / "checkpoints" / LATEST, {"dir": "../../other/step-00000004"})
    outside = snapshot_files(tmp_path / "other")

    assert latest_checkpoint(run_dir) == run_dir / "checkpoints" / "step-00000004"
    run_training(None, run_dir, resume=True)

    assert "not a checkpoint folder of this run" in caplog.text
    assert snapshot_files(tmp_path / "other") == outside
    assert_same_run_weights(pretrained_run(tmp_path_factory), run_dir)


def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's values
    path.write_bytes(bytes(data))


def test_a_damaged_checkpoint_falls_back_to_the_previous(root, tmp_path, tmp_path_factory, caplog):
    run_dir = tmp_path / "run"
    run_training(config(root, "run.max_steps=6", "run.checkpoint_every=2"), run_dir)
    names = [folder.name for folder in checkpoint_folders(run_dir)]
    assert names == ["step-00000004", "step-00000006"]  # the newest two are kept
    flip_a_byte(run_dir / "checkpoints" / "step-00000006" / "model" / "shared.safetensors")

    assert latest_checkpoint(run_dir).name == "step-00000004"
    assert "falling back to checkpoint step-00000004" in caplog.text
    run_training(None, run_dir, resume=True)

    assert_same_run_weights(pretrained_run(tmp_path_factory), run_dir)


def test_no_intact_checkpoint_is_a_storage_error(root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_training(config(root, "run.max_steps=2", "run.checkpoint_every=1"), run_dir)
    for folder in checkpoint_folders(run_dir):
        flip_a_byte(folder / "model" / "shared.safetensors")
    with pytest.raises(StorageError, match="no intact checkpoint"):
        latest_checkpoint(run_dir)
    before = snapshot_files(run_dir)
    assert cli_train(root, run_dir, resume=True) == 4
    assert "shared.safetensors does not match its checksum" in one_error_line(capsys)
    assert snapshot_files(run_dir) == before  # the damaged checkpoints are kept for the user


# -- a smoke-test limit does not trap the run -------------------------------------------------
def test_max_steps_stops_without_a_model_and_is_not_saved(root, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli_train(root, out, "run.max_steps=3") == 0
    printed = capsys.readouterr().out
    assert "model written" not in printed and "--resume" in printed
    assert not (out / "model").exists()
    assert load_config(out / "config.yaml").run.max_steps is None

    assert cli_train(root, out, resume=True) == 0  # a plain --resume finishes the run
    assert "model written" in capsys.readouterr().out
    assert read_json(out / "summary.json")["global_step"] == 10


# -- the data root is stored; a changed one is checked ----------------------------------------
def test_relative_root_is_stored_absolute_and_resumes_from_anywhere(
    root, tmp_path, tmp_path_factory, monkeypatch
):
    monkeypatch.chdir(root.parent)
    run_dir = tmp_path / "run"
    run_training(config(root.name, "run.max_steps=4"), run_dir)
    assert load_config(run_dir / "config.yaml").data.root == str(root)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    run_training(None, run_dir, resume=True)

    assert list(elsewhere.iterdir()) == []  # no dataset built here
    assert_same_run_weights(pretrained_run(tmp_path_factory), run_dir)


def test_a_changed_root_must_hold_the_same_data(root, tmp_path):
    run_dir = tmp_path / "run"
    run_training(config(root, "run.max_steps=2"), run_dir)
    moved = shutil.copytree(root, tmp_path / "moved")
    other = prepare_offline(tmp_path / "other", image_size=20, max_per_class=9, domains=["animals"])

    with pytest.raises(ConfigError, match="annotation files differ"):
        run_training(config(other, "run.max_steps=3"), run_dir, resume=True)
    run_training(config(moved, "run.max_steps=3"), run_dir, resume=True)  # a copy is fine
    assert read_json(run_dir / "data.json")["root"] == str(moved)


# -- one process at a time; leftovers of a crash -----------------------------------------------
def test_a_held_run_folder_is_refused(root, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_training(config(root, "run.max_steps=1"), run_dir)
    before = snapshot_files(run_dir)
    with folder_lock(run_dir):  # another process training or evaluating it
        assert cli_train(root, run_dir, resume=True) == 4
        assert "in use by another multidomain process" in one_error_line(capsys)
        assert main(["eval", "--run", str(run_dir)]) != 0
    assert snapshot_files(run_dir) == before


def test_crash_leftovers_are_cleared_and_user_files_kept(root, tmp_path, tmp_path_factory):
    run_dir = tmp_path / "run"
    run_training(config(root, "run.max_steps=4", "run.checkpoint_every=2"), run_dir)
    (run_dir / ".config.yaml.k2j3.tmp").write_text("half")
    (run_dir / ".model.x8y" / "domains").mkdir(parents=True)
    (run_dir / "checkpoints" / ".step-00000006.abc" / "model").mkdir(parents=True)
    (run_dir / "checkpoints" / ".latest.json.q1.tmp").write_text("{")
    (run_dir / "notes.tmp").write_text("mine")

    run_training(None, run_dir, resume=True)

    assert leftovers(run_dir) == []
    assert (run_dir / "notes.tmp").read_text() == "mine"
    assert_same_run_weights(pretrained_run(tmp_path_factory), run_dir)


def test_interrupt_names_the_step_to_resume_from(root, tmp_path, monkeypatch, capsys):
    real_step = Trainer.train_step

    def interrupted_step(self, *args):
        if self.state.global_step == 5:
            raise KeyboardInterrupt
        return real_step(self, *args)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    out = tmp_path / "run"
    assert cli_train(root, out, "run.checkpoint_every=2") == 130
    err = one_error_line(capsys)
    assert "interrupted at step 5" in err and "step 4" in err and "--resume" in err


def test_run_outputs_honour_the_umask(root, tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        run_training(config(root, "optim.epochs=1"), out)
    finally:
        os.umask(old)
    modes = {
        p.relative_to(out).as_posix(): p.stat().st_mode & 0o777
        for p in out.rglob("*")
        if p.name != ".lock"
    }
    assert modes["config.yaml"] == 0o644 and modes["model/shared.safetensors"] == 0o644
    assert modes["model"] == 0o755 and modes["checkpoints/step-00000010"] == 0o755
    assert set(modes.values()) == {0o644, 0o755}, {k: oct(v) for k, v in modes.items()}


def test_divergence_exits_5(root, tmp_path, monkeypatch, capsys):
    class NanLoss:
        def cross_entropy(self, logits, labels, **options):
            return (logits.sum() * float("nan")).float()

    monkeypatch.setattr(train_module, "F", NanLoss())
    assert cli_train(root, tmp_path / "run") == 5
    assert "last good checkpoint" in one_error_line(capsys)


# -- eval: the folder it writes to -------------------------------------------------------------
def finished_copy(tmp_path_factory, tmp_path):
    return shutil.copytree(pretrained_run(tmp_path_factory), tmp_path / "run")


def test_eval_out_writes_elsewhere_and_leaves_the_run_alone(tmp_path, tmp_path_factory):
    run_dir = finished_copy(tmp_path_factory, tmp_path)
    before = snapshot_files(run_dir)
    assert main(["eval", "--run", str(run_dir), "--out", str(tmp_path / "scores")]) == 0
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == [
        ".lock",
        "eval.json",
        "results.json",
    ]
    assert snapshot_files(run_dir) == before


def test_eval_of_a_read_only_run_is_refused_before_evaluating(
    tmp_path, tmp_path_factory, monkeypatch, capsys
):
    run_dir = finished_copy(tmp_path_factory, tmp_path)
    (run_dir / ".lock").unlink()
    real_open = os.open

    def read_only(path, flags, *args):
        if str(path).startswith(str(run_dir)) and flags & (os.O_WRONLY | os.O_RDWR):
            raise OSError(30, "Read-only file system", str(path))  # EROFS
        return real_open(path, flags, *args)

    evaluated = []
    monkeypatch.setattr("multidomain.locks.os.open", read_only)
    monkeypatch.setattr(
        "multidomain.engine.eval_run.load_run_model", lambda *a: evaluated.append(a)
    )
    assert main(["eval", "--run", str(run_dir)]) == 4
    err = one_error_line(capsys)
    assert "cannot write to" in err and "--out" in err
    assert evaluated == []


def test_the_thread_count_is_recorded_and_a_change_is_named(root, tmp_path, caplog):
    run_dir = tmp_path / "run"
    run_training(config(root, "run.max_steps=2"), run_dir)
    assert read_json(latest_checkpoint(run_dir) / "state.json")["threads"] == 1
    torch.set_num_threads(2)
    try:
        run_training(config(root, "run.max_steps=3"), run_dir, resume=True)
    finally:
        torch.set_num_threads(1)  # what the module's one_thread fixture set
    assert "trained with 1 threads and resumes with 2" in caplog.text
    assert read_json(latest_checkpoint(run_dir) / "state.json")["threads"] == 2


def test_a_damaged_model_is_refused_by_eval_and_published_again_by_resume(
    tmp_path, tmp_path_factory, capsys
):
    run_dir = finished_copy(tmp_path_factory, tmp_path)
    flip_a_byte(run_dir / "model" / "shared.safetensors")
    assert main(["eval", "--run", str(run_dir)]) == 4
    err = one_error_line(capsys)
    assert "shared.safetensors does not match its checksum" in err and "--resume" in err

    run_training(None, run_dir, resume=True)  # nothing left to train: publishes the model

    assert main(["eval", "--run", str(run_dir)]) == 0
    assert_same_run_weights(pretrained_run(tmp_path_factory), run_dir)
