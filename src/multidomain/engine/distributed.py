"""torchrun support: ranks from the environment, device choice, DDP wrapping, reductions.

Single-process runs take the same code path with ``world == 1``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main rank logs and writes files."""
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Read torchrun's environment; start the process group when there are several ranks."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(
        rank=int(os.environ.get("RANK", "0")),
        world=world,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return info


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
    """The bare model (checkpoints are saved from it: no ``module.`` prefixes)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.world > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        dist.barrier()
