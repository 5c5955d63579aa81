"""torchrun support: ranks from the environment, the process group (with a timeout), device
choice, DDP wrapping, reductions, and the error a lost rank ends the job with.

Single-process runs take the same code path with ``world == 1`` (no collective is called).
PAPER.md section 9: other domains' parameters get no gradient in a step, so DDP runs with
``find_unused_parameters=True``; every rank trains the same domain at each step.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from multidomain.errors import RankLost

# Fragments of the errors gloo and NCCL raise (as plain RuntimeError) when a peer is gone or a
# collective waited past the process-group timeout.
_LOST_PEER_SIGNS = ("gloo", "nccl", "connection reset", "connection closed", "timed out")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main rank logs and writes files."""
        return self.rank == 0


def env_info() -> DistInfo:
    """This process's place in the job, read from torchrun's environment (1 rank without it)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world=int(os.environ.get("WORLD_SIZE", "1")),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init_distributed(timeout_s: float | None = None) -> DistInfo:
    """Read torchrun's environment; start the process group when there are several ranks.

    Args:
        timeout_s: how long a collective may wait for the other ranks before it fails (a rank
            died or hung). None: torch's default (30 min for gloo, 10 min for NCCL).
    """
    info = env_info()
    if info.world > 1 and not dist.is_initialized():
        timeout = None if timeout_s is None else datetime.timedelta(seconds=timeout_s)
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, timeout=timeout)
    return info


def end_distributed(started: bool) -> None:
    """Destroy the process group if this caller started it (``started``)."""
    if started and dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(spec: str, info: DistInfo) -> torch.device:
    """``auto``: this rank's GPU when CUDA is available, else the CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"run.device={spec} but CUDA is not available; use run.device=cpu")
        if device.index is None:
            device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    return device


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP when several ranks train; unused parameters exist (other domains' layers)."""
    if info.world == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model, out of ``torch.compile`` and DDP (checkpoints are saved from it: no
    ``_orig_mod.`` or ``module.`` prefixes)."""
    model = getattr(model, "_orig_mod", model)
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``values`` summed over the ranks, in place (unchanged with one rank)."""
    if info.world > 1:
        device = values.device
        if dist.get_backend() == "nccl" and device.type != "cuda":
            values = values.cuda()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values = values.to(device)
    return values


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()


def is_lost_rank(err: BaseException, info: DistInfo) -> bool:
    """Whether ``err`` is a collective that failed because another rank died or hung."""
    if info.world == 1 or not isinstance(err, RuntimeError):
        return False
    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    message = str(err).lower()
    return any(sign in message for sign in _LOST_PEER_SIGNS)


def lost_rank_error(err: BaseException, info: DistInfo, timeout_s: float, resume: str) -> RankLost:
    """The one-line error of a rank whose collective failed (``resume``: the command)."""
    cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return RankLost(
        f"rank {info.rank} of {info.world} lost the other ranks ({cause[:200]}): another rank "
        f"died or stopped answering for run.dist_timeout={timeout_s:g} s (its own error, or "
        f"torchrun's summary, names it). The last checkpoint is intact: {resume}"
    )
