"""Crash-safe checkpoints: a kill at any point of a save (or of publishing the final model)
leaves ``latest.json`` naming a complete checkpoint, and ``--resume`` then reproduces the
uninterrupted run; the ``best/`` model is the one of the best validation epoch."""

from __future__ import annotations

import os
import types

import pytest

from engine_helpers import (
    assert_same_run_weights,
    assert_same_tensors,
    leftovers,
    pretrained_run,
    read_tensors,
    snapshot_files,
    tiny_config,
)
from multidomain.engine import checkpoint as checkpoint_module
from multidomain.engine import run_dir as run_dir_module
from multidomain.engine.checkpoint import LATEST, latest_checkpoint, load_optimizer_state
from multidomain.engine.train import run_training
from multidomain.io import read_json
from multidomain.models.packs import load_model


class Killed(BaseException):
    """Stands for SIGKILL / power loss: not an ``Exception``, so no handler swallows it."""


pytestmark = pytest.mark.usefixtures("one_thread")


def config(root, *overrides):
    """The configuration of the shared pretraining run (so it is the reference)."""
    return tiny_config(root, "run.bn_guard=false", *overrides)


def assert_complete(checkpoint, global_step: int) -> None:
    """The checkpoint's every part loads."""
    assert read_json(checkpoint / "state.json")["global_step"] == global_step
    for part in ("model", "best"):
        model = load_model(checkpoint / part)
        assert list(model.domains) == ["animals"]
    assert load_optimizer_state(checkpoint)["optimizer"]["state"]


@pytest.mark.parametrize("hard", [False, True], ids=["exception", "hard-kill"])
def test_kill_while_saving_keeps_the_previous_checkpoint(
    hard, root, tmp_path, tmp_path_factory, monkeypatch
):
    """Killed after the new checkpoint's weights were written, before its optimizer state:
    the previous checkpoint stays the latest, loads, and the run resumes exactly."""
    real_save = checkpoint_module.torch.save

    def dying_save(obj, path, *args, **kwargs):
        if path.parent.name.startswith(".step-00000006."):
            path.write_bytes(b"half a file")
            raise Killed
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.torch, "save", dying_save)
    if hard:  # a real kill runs no cleanup: the temporary folder stays behind
        monkeypatch.setattr(checkpoint_module, "shutil", types.SimpleNamespace(rmtree=_no_op))
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        run_training(config(root, "run.checkpoint_every=2"), run_dir)
    monkeypatch.undo()

    latest = latest_checkpoint(run_dir)
    assert latest.name == "step-00000004"
    assert_complete(latest, 4)
    assert not (run_dir / "checkpoints" / "step-00000006").exists()
    assert not (run_dir / "model").exists()
    partial = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    if hard:
        assert len(partial) == 1 and (run_dir / "checkpoints" / partial[0] / "model").is_dir()
    else:
        assert partial == []

    run_training(None, run_dir, resume=True)

    assert_same_run_weights(pretrained_run(tmp_path_factory), run_dir)
    assert leftovers(run_dir) == []  # the next save cleared the dead one's folder


def _no_op(*args, **kwargs) -> None:
    return None


def test_kill_while_saving_the_same_step_again_keeps_a_checkpoint(
    root, tmp_path, tmp_path_factory, monkeypatch
):
    """Step 10 ends epoch 1 and is also a periodic checkpoint: it is saved twice. A kill
    during the second save must not leave ``latest.json`` naming a deleted folder."""
    real_replace = os.replace
    saves = []

    def dying_replace(src, dst, *args, **kwargs):
        if os.path.basename(src).startswith(".step-00000010."):
            saves.append(dst)
            if len(saves) == 2:
                raise Killed
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", dying_replace)
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        run_training(config(root, "run.checkpoint_every=2"), run_dir)
    monkeypatch.undo()
    assert len(saves) == 2

    latest = latest_checkpoint(run_dir)  # raised "the run folder is damaged" before the fix
    assert_complete(latest, 10)
    assert read_json(latest / "state.json")["epoch"] == 0  # the periodic save of step 10

    run_training(None, run_dir, resume=True)

    assert_same_run_weights(pretrained_run(tmp_path_factory), run_dir)
    assert leftovers(run_dir) == []


def test_a_checkpoint_saved_twice_keeps_the_newer_one(root, tmp_path):
    run_dir = tmp_path / "run"
    run_training(config(root, "run.checkpoint_every=2", "optim.epochs=1"), run_dir)
    names = [p.name for p in (run_dir / "checkpoints").iterdir()]
    # the newest two are kept: the second save of step 10, and the first one to fall back to
    assert latest_checkpoint(run_dir).name == "step-00000010-2"
    assert sorted(names) == [LATEST, "step-00000010", "step-00000010-2"]
    state = read_json(latest_checkpoint(run_dir) / "state.json")
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 0, 10)


def test_kill_while_publishing_leaves_no_partial_model(
    root, tmp_path, tmp_path_factory, monkeypatch
):
    def dying_copytree(source, target, **kwargs):
        os.makedirs(target, exist_ok=True)
        (target / "config.json").write_bytes((source / "config.json").read_bytes())
        raise Killed

    fake = types.SimpleNamespace(copytree=dying_copytree, rmtree=run_dir_module.shutil.rmtree)
    monkeypatch.setattr(run_dir_module, "shutil", fake)
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        run_training(config(root), run_dir)
    monkeypatch.undo()
    assert not (run_dir / "model").exists()
    assert leftovers(run_dir) == []
    finished = latest_checkpoint(run_dir)
    before = snapshot_files(finished)

    run_training(None, run_dir, resume=True)  # nothing left to train: publishes the model

    assert snapshot_files(latest_checkpoint(run_dir)) == before
    assert_same_run_weights(pretrained_run(tmp_path_factory), run_dir)


def test_best_is_the_model_of_the_best_validation_epoch(root, tmp_path, tmp_path_factory):
    reference = pretrained_run(tmp_path_factory)
    best_epoch = read_json(reference / "summary.json")["best_epoch"]["mean"]
    shorter = tmp_path / "shorter"
    # the same run stopped after the best epoch (the lr schedule is constant)
    run_training(config(root, f"optim.epochs={best_epoch + 1}"), shorter)
    assert_same_tensors(
        read_tensors(latest_checkpoint(shorter) / "model"),
        read_tensors(latest_checkpoint(reference) / "best"),
    )
    assert_same_tensors(read_tensors(reference / "model"), read_tensors(shorter / "model"))
