"""One rank of the torchrun jobs of ``test_distributed.py`` (not a test module).

    torchrun --standalone --nproc_per_node 2 tests/ddp_job.py SPEC.json

SPEC holds ``out`` (a folder for this script's records), ``commands`` (``multidomain`` command
lines, run in order through the real CLI in one process group) and optional faults (in every
command, or only in the one numbered ``faulty_command``):

- ``watch``: a folder; ranks other than 0 record every change they make under it
  (a Python audit hook: file opened for writing, created, renamed, removed) in
  ``out/writes-RANK.json``.
- ``kill_at``: global step at which rank 0 SIGKILLs every process of the job (the other rank,
  the torchrun agent, itself): a whole job killed mid-run.
- ``die_at``: global step at which rank 1 SIGKILLs itself.
- ``hang_at``: global step at which rank 1 stops answering (sleeps).
- ``nan_at``: global step at which rank 1's images become NaN (its loss alone is not finite).

Every rank records each step it trains, ``[global step, domain, labels]``, and the exit status
of each command, ``["end", status]``, in ``out/steps-RANK.json``; the commands stop at the first
that fails, and its status is the script's (0 when the spec says ``exit_zero``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from multidomain.cli import main
from multidomain.engine.train import Trainer

RANK = int(os.environ["RANK"])
COMMAND = [0]  # the number of the command running
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.link", "os.symlink"}
_CHANGES |= {"os.truncate", "os.chmod", "shutil.rmtree", "shutil.copytree"}


def watch_writes(folder: Path, changes: list[str]) -> None:
    """Record in ``changes`` every change this process makes under ``folder``."""
    prefix = str(folder.resolve())

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            paths = [path] if writes else []
        elif event in _CHANGES:
            paths = [a for a in args[:2] if isinstance(a, str | os.PathLike)]
        else:
            return
        for path in paths:
            if isinstance(path, str | os.PathLike) and os.path.abspath(path).startswith(prefix):
                changes.append(f"{event} {path}")

    sys.addaudithook(hook)


def install_faults(spec: dict, out: Path, steps: list) -> None:
    """Wrap ``Trainer.train_step``: record each step, and inject the spec's fault."""
    real_step = Trainer.train_step

    def step(self, images, labels, domain, epoch, index):
        faulty = spec.get("faulty_command", COMMAND[0]) == COMMAND[0]

        def due(fault: str, rank: int) -> bool:
            return faulty and rank == RANK and self.state.global_step == spec.get(fault)

        if due("kill_at", 0):
            other = int((out / "pid-1").read_text())
            for pid in (other, os.getppid(), os.getpid()):
                os.kill(pid, signal.SIGKILL)
        if due("die_at", 1):
            os.kill(os.getpid(), signal.SIGKILL)
        if due("hang_at", 1):
            time.sleep(3600)
        if due("nan_at", 1):
            images = torch.full_like(images, float("nan"))
        steps.append([self.state.global_step, domain, labels.tolist()])
        return real_step(self, images, labels, domain, epoch, index)

    Trainer.train_step = step


def run(spec: dict) -> int:
    out = Path(spec["out"])
    (out / f"pid-{RANK}").write_text(str(os.getpid()))
    changes: list[str] = []
    steps: list = []
    if RANK != 0 and spec.get("watch"):
        watch_writes(Path(spec["watch"]), changes)
    install_faults(spec, out, steps)
    if len(spec["commands"]) > 1:  # one process group for all of them
        dist.init_process_group("gloo")
    statuses = []
    for number, command in enumerate(spec["commands"]):
        COMMAND[0] = number
        statuses.append(main(command))
        steps.append(["end", statuses[-1]])
        if statuses[-1]:
            break
    (out / f"steps-{RANK}.json").write_text(json.dumps(steps))
    (out / f"writes-{RANK}.json").write_text(json.dumps(changes))
    # "exit_zero": the records are the result; a failing rank must not have the others
    # stopped by torchrun before they write theirs
    return 0 if spec.get("exit_zero") else statuses[-1]


if __name__ == "__main__":
    sys.exit(run(json.loads(Path(sys.argv[1]).read_text())))
