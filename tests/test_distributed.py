"""Two processes under ``torchrun --standalone`` on gloo (PAPER.md section 9), through the real
``multidomain train`` command line (``tests/ddp_job.py`` runs it on each rank).

- the parameters of a 2-process run match, within 1e-5, a 1-process reference that forwards
  the two ranks' halves separately and averages their gradients; BN running statistics match
  those updated from rank 0's halves (DDP broadcasts rank 0's buffers): ``joint`` (shared
  weights train) and ``adapt`` (only per-domain weights: most parameters get no gradient);
- every rank trains the same domain at each step, on its own shard, for as many steps;
- decisions come from values reduced over the ranks (train accuracy, validation counts,
  divergence), and only rank 0 writes;
- a job killed mid-run and resumed under 2 processes ends with the uninterrupted run's weights;
- a rank that dies ends the job, with a clear error, within 60 s.

Launches cost most of the time here (each rank imports torch): the runs that can share a job
share one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

import multidomain
from engine_helpers import (
    TINY,
    assert_same_run_weights,
    mini_root,
    once,
    pretrained_run,
)
from multidomain.engine.batches import epoch_plan, seed_for
from multidomain.engine.checkpoint import latest_checkpoint
from multidomain.engine.config import load_config
from multidomain.engine.eval_run import evaluate_run
from multidomain.engine.logs import read_metrics
from multidomain.engine.train import Trainer
from multidomain.io import read_json
from multidomain.models.packs import load_model

JOB = Path(__file__).with_name("ddp_job.py")
JOINT = ("animals", "textures")  # at 2 x 8 images a step: 5 + 1 steps an epoch
ADAPT = ("digits", "textures")
STEPS = 4  # steps of the runs compared with the 1-process reference
KILL_AT = 9  # checkpoints every 4 steps: the kill loses step 8's work after the checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def overrides(root: Path, recipe: str, domains: tuple[str, ...], *extra: str) -> list[str]:
    return [
        f"recipe={recipe}",
        f"data.root={root}",
        f"data.domains=[{', '.join(domains)}]",
        "optim.epochs=2",
        *TINY,
        *extra,
    ]


def train_command(run_dir: Path, settings: list[str], resume: bool = False) -> list[str]:
    command = ["train", "--out", str(run_dir)]
    for setting in settings:
        command += ["--set", setting]
    return command + (["--resume"] if resume else [])


def torchrun(
    spec: dict, folder: Path, timeout: float = 120, monitor_interval: float | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``ddp_job.py`` on 2 CPU processes; returns the finished process and its duration.

    ``monitor_interval``: how often torchrun's agent looks at its workers (its default, 0.1 s,
    lets it terminate the surviving rank before that rank reaches its next collective).
    """
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"out": str(folder), **spec}
    (folder / "spec.json").write_text(json.dumps(spec))
    source = str(Path(multidomain.__file__).parents[1])  # the code under test, in the workers too
    paths = [source, str(JOB.parent), os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "PYTHONPATH": os.pathsep.join(p for p in paths if p),
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    if monitor_interval is not None:
        command += ["--monitor-interval", str(monitor_interval)]
    command += ["--nproc_per_node", "2", str(JOB), str(folder / "spec.json")]
    start = time.monotonic()
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True
    )
    return done, time.monotonic() - start


def steps_of(folder: Path, rank: int) -> list:
    return json.loads((folder / f"steps-{rank}.json").read_text())


def shared_job(tmp_path_factory) -> dict:
    """One 2-process job: the runs compared with the reference, an uninterrupted run, and a
    run whose loss is NaN on rank 1 only."""

    def build() -> dict:
        root = mini_root(tmp_path_factory)
        folder = tmp_path_factory.mktemp("ddp")
        runs = folder / "runs"
        init = f"model.init={pretrained_run(tmp_path_factory)}"
        settings = {
            "joint": overrides(
                root, "joint", JOINT, "run.bn_guard=false", f"run.max_steps={STEPS}"
            ),
            "adapt": overrides(root, "adapt", ADAPT, init, f"run.max_steps={STEPS}"),
            "full": overrides(root, "joint", JOINT, "run.checkpoint_every=4"),
            "nan": overrides(root, "joint", JOINT),
        }
        spec = {
            "commands": [train_command(runs / name, s) for name, s in settings.items()],
            "watch": str(runs),
            "nan_at": 2,
            "faulty_command": 3,  # the "nan" run
            "exit_zero": True,
        }
        done, _ = torchrun(spec, folder / "job")
        assert done.returncode == 0, done.stderr[-3000:]
        return {"folder": folder / "job", "runs": runs, "settings": settings, "done": done}

    return once("ddp-shared", build)


# -- the same parameters as a 1-process reference -------------------------------------------
def reference_model(settings: list[str], tmp_path: Path, ranks: tuple[int, ...] = (1, 0)):
    """The model after ``STEPS`` steps of one process that forwards each rank's half of every
    batch separately and steps on their mean gradient; BN statistics keep rank 0's update."""
    config = load_config(None, settings)
    trainer = Trainer(config, tmp_path / "reference")
    model, samples, seed = trainer.model, trainer.train_samples, config.run.seed
    plans = [
        epoch_plan(samples, config.data.batch_size, seed, 0, config.run.schedule, rank, 2)
        for rank in (0, 1)
    ]
    for group in trainer.optimizer.param_groups:
        group["lr"] = trainer.lr_at(0)
    model.train()
    trainer._freeze_untrained_norms()
    for step in range(STEPS):
        domain = plans[0][step][0]
        trainer.optimizer.zero_grad(set_to_none=True)
        for rank in ranks:
            buffers = {k: b.clone() for k, b in model.named_buffers()}
            images, labels = default_collate([samples[(0, i)] for i in plans[rank][step][1]])
            torch.manual_seed(seed_for(seed, 0, step, 7))  # the run's dropout masks
            loss = F.cross_entropy(model(images, domain), labels) / len(ranks)
            loss.backward()
            if rank != 0:  # DDP broadcasts rank 0's buffers before every forward
                with torch.no_grad():
                    for name, buffer in model.named_buffers():
                        buffer.copy_(buffers[name])
        trainer.optimizer.step()
    trainer.log.close()
    return model


@pytest.mark.parametrize("recipe", ["joint", "adapt"])
def test_two_ranks_match_the_one_process_reference(recipe, tmp_path, tmp_path_factory):
    job = shared_job(tmp_path_factory)
    checkpoint = latest_checkpoint(job["runs"] / recipe)
    assert read_json(checkpoint / "state.json")["global_step"] == STEPS
    trained = load_model(checkpoint / "model").state_dict()
    reference = reference_model(job["settings"][recipe], tmp_path).state_dict()
    wrong = reference_model(job["settings"][recipe], tmp_path, ranks=(0,)).state_dict()

    assert sorted(trained) == sorted(reference)
    gaps = {k: (trained[k].double() - reference[k].double()).abs().max().item() for k in trained}
    assert max(gaps.values()) <= 1e-5, sorted(gaps.items(), key=lambda kv: -kv[1])[:3]
    # the comparison can fail: rank 0's half alone trains measurably other weights
    assert max((trained[k].double() - wrong[k].double()).abs().max().item() for k in trained) > 1e-4
    buffers = [k for k in trained if "running_mean" in k]
    assert buffers and all(gaps[k] <= 1e-5 for k in buffers)


# -- one schedule, reduced decisions, one writer ----------------------------------------------
def test_every_rank_trains_the_same_domains_for_the_same_number_of_steps(tmp_path_factory):
    job = shared_job(tmp_path_factory)
    rank0, rank1 = steps_of(job["folder"], 0), steps_of(job["folder"], 1)
    assert len(rank0) == len(rank1) == (4 + 1) + (4 + 1) + (12 + 1) + (3 + 1)
    for (step0, *rest0), (step1, *rest1) in zip(rank0, rank1, strict=True):
        assert step0 == step1
        if step0 != "end":
            (domain0, labels0), (domain1, labels1) = rest0, rest1
            assert domain0 == domain1 and len(labels0) == len(labels1) == 8
    shards = [labels for _, _, labels in (s for s in rank0 if s[0] != "end")]
    others = [labels for _, _, labels in (s for s in rank1 if s[0] != "end")]
    assert any(a != b for a, b in zip(shards, others, strict=True))  # each rank its own shard


def test_decisions_use_values_reduced_over_the_ranks(tmp_path_factory):
    job = shared_job(tmp_path_factory)
    full = job["runs"] / "full"
    summary = read_json(full / "summary.json")
    # train accuracy counts both ranks' images: 6 steps of 2 x 8 images an epoch
    assert sum(n for _, n in summary["epoch_counts"].values()) == 6 * 16
    # validation counts both ranks' shards once: the logged accuracy is the whole split's
    best = summary["best_epoch"]["mean"]
    logged = [m for m in read_metrics(full) if m["event"] == "val" and m["epoch"] == best]
    report = evaluate_run(full, split="val", out=full.parent / "eval")  # the best model
    whole = {d: v["accuracy"] for d, v in report["domains"].items()}
    assert logged[0]["accuracy"] == pytest.approx(whole, abs=1e-9)
    assert {d: v["images"] for d, v in report["domains"].items()} == {"animals": 20, "textures": 6}
    # a NaN loss on rank 1 alone stops both ranks at the same step with the divergence error
    ends = [[s for s in steps_of(job["folder"], r) if s[0] == "end"] for r in (0, 1)]
    assert ends[0] == ends[1] == [["end", 0]] * 3 + [["end", 5]]
    assert "training diverged" in job["done"].stderr or "loss is nan" in job["done"].stderr


def test_only_rank_0_writes(tmp_path_factory):
    job = shared_job(tmp_path_factory)
    assert json.loads((job["folder"] / "writes-1.json").read_text()) == []
    assert (job["runs"] / "full" / "model" / "config.json").is_file()


# -- faults -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "killed",
    [
        "rank",  # rank 1 is SIGKILLed: rank 0 sees it at once and the job ends with exit 6
        pytest.param("job", marks=pytest.mark.slow),  # every process of the job is SIGKILLed
    ],
)
def test_a_job_killed_mid_run_resumes_to_the_uninterrupted_weights(
    killed, tmp_path, tmp_path_factory
):
    job = shared_job(tmp_path_factory)
    run_dir = tmp_path / "run"
    command = train_command(run_dir, job["settings"]["full"])
    fault = {"die_at": KILL_AT} if killed == "rank" else {"kill_at": KILL_AT}
    # the agent looks every 3 s: the surviving rank meets the dead one at its next all-reduce
    # first (within a step), so the message tested is ours, not the agent's SIGTERM
    done, seconds = torchrun({"commands": [command], **fault}, tmp_path / "killed", 120, 3.0)
    if killed == "rank":
        assert done.returncode != 0 and seconds < 60
        assert "error: rank 0 of 2 lost the other ranks" in done.stderr, done.stderr[-3000:]
        assert "run the same command with --out" in done.stderr
    else:
        assert done.returncode == -9  # the torchrun agent itself was killed
    assert read_json(latest_checkpoint(run_dir) / "state.json")["global_step"] == 8
    assert not (run_dir / "model").exists()

    again = {"commands": [["train", "--out", str(run_dir), "--resume"]]}
    resumed, _ = torchrun(again, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run_weights(job["runs"] / "full", run_dir)


@pytest.mark.slow
def test_a_hung_rank_ends_the_job_after_the_timeout_with_exit_6(tmp_path, tmp_path_factory):
    job = shared_job(tmp_path_factory)
    settings = [*job["settings"]["full"], "run.dist_timeout=5"]
    command = train_command(tmp_path / "run", settings)
    done, seconds = torchrun({"commands": [command], "hang_at": 3}, tmp_path / "job", timeout=90)
    assert done.returncode != 0 and seconds < 60
    assert "error: rank 0 of 2 lost the other ranks" in done.stderr, done.stderr[-3000:]
    assert "run.dist_timeout=5 s" in done.stderr
    assert "exitcode  : 6" in done.stderr  # rank 0's exit code, in torchrun's summary
