"""Deterministic multi-domain batching: every batch holds one domain (per-domain BN statistics
need it), and everything random is a function of (seed, epoch, step or sample index).

Because nothing depends on RNG state carried from step to step, a run resumed from a checkpoint
at any step sees exactly the batches, augmentations and dropout masks it would have seen
uninterrupted, whatever the number of loader workers; and every DDP rank derives the same
domain schedule from the same seed.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

Plan = list[tuple[str, list[int]]]  # one (domain, global sample indices) per step

_MASK = (1 << 63) - 1


def seed_for(*parts: int) -> int:
    """A 63-bit seed mixed from integers (SplitMix64-style), stable across runs and platforms."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (int(part) & _MASK)) * 0xBF58476D1CE4E5B9 & ((1 << 64) - 1)
        value ^= value >> 31
    return value & _MASK


class SeededSamples(Dataset):
    """Several domains' datasets behind one index space.

    Item ``(epoch, index)`` seeds torch, numpy and ``random`` from ``(seed, epoch, index)``
    before the sample's transform runs, so augmentation does not depend on which worker, or
    which run, loads it.
    """

    def __init__(self, datasets: dict[str, Dataset], seed: int = 0) -> None:
        self.domains = list(datasets)
        self.datasets = list(datasets.values())
        self.offsets = [0]
        for dataset in self.datasets:
            self.offsets.append(self.offsets[-1] + len(dataset))
        self.seed = seed

    def __len__(self) -> int:
        return self.offsets[-1]

    def domain_range(self, domain: str) -> range:
        i = self.domains.index(domain)
        return range(self.offsets[i], self.offsets[i + 1])

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        part = bisect.bisect_right(self.offsets, index) - 1
        sample_seed = seed_for(self.seed, epoch, index)
        # the CPU generator only: torch.manual_seed also seeds CUDA, 80x slower per sample
        torch.random.default_generator.manual_seed(sample_seed)
        random.seed(sample_seed)
        np.random.seed(sample_seed % 2**32)
        return self.datasets[part][index - self.offsets[part]]


class PlanSampler:
    """A batch sampler that yields the batches it is handed (set before each iteration)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_plan(self, plan: Plan, epoch: int, start: int = 0) -> None:
        self.batches = [[(epoch, i) for i in indices] for _, indices in plan[start:]]


def _domain_batches(
    indices: range, batch: int, seed: int, rank: int, world: int, min_batches: int = 0
) -> list[list[int]]:
    """Shuffled full batches of one domain (re-shuffled to cycle up to ``min_batches``); the
    remainder of each shuffle is left out (see :func:`epoch_plan`)."""
    global_batch = batch * world
    batches: list[list[int]] = []
    round_ = 0
    while True:
        order = torch.randperm(
            len(indices), generator=torch.Generator().manual_seed(seed_for(seed, round_))
        )
        shuffled = [indices[i] for i in order.tolist()]
        for start in range(0, len(shuffled) - global_batch + 1, global_batch):
            batches.append(shuffled[start : start + global_batch][rank::world])
        round_ += 1
        if len(batches) >= min_batches or not batches:
            return batches[: max(min_batches, len(batches))] if min_batches else batches


def epoch_plan(
    samples: SeededSamples,
    batch_size: int,
    seed: int,
    epoch: int,
    schedule: str = "proportional",
    rank: int = 0,
    world: int = 1,
) -> Plan:
    """The epoch's steps: which domain, which samples.

    ``proportional``: every domain's batches once, in a seeded random interleaving (domains
    are visited in proportion to their size). ``round_robin``: domains in turn, small domains
    cycled until the largest has been seen once.

    Only full batches train: a domain of ``n`` images gives ``n // (batch_size * world)`` steps
    an epoch and its last ``n % (batch_size * world)`` images of the epoch's shuffle are left
    out (the official code keeps the partial batch: vgg-flowers, 1,020 images at batch 128,
    trains 7 steps here where it takes 8, and 124 images sit out each epoch). The order is
    reshuffled every epoch, so a different 124 sit out and every image trains over the epochs.
    Chosen so that every batch holds ``batch_size`` images on every rank (the same number of
    steps on each DDP rank, BN statistics never from a small last batch) and so that the
    results and exact resumption of existing runs stay as they are.
    """
    per_domain = {}
    for d, domain in enumerate(samples.domains):
        per_domain[domain] = _domain_batches(
            samples.domain_range(domain), batch_size, seed_for(seed, epoch, d), rank, world
        )
    empty = [domain for domain, batches in per_domain.items() if not batches]
    if empty:
        raise ValueError(
            f"domains {empty} have fewer training images than one batch "
            f"({batch_size * world}); lower data.batch_size"
        )
    if schedule == "round_robin":
        longest = max(len(b) for b in per_domain.values())
        for d, domain in enumerate(samples.domains):
            per_domain[domain] = _domain_batches(
                samples.domain_range(domain),
                batch_size,
                seed_for(seed, epoch, d),
                rank,
                world,
                min_batches=longest,
            )
        return [(domain, per_domain[domain][i]) for i in range(longest) for domain in per_domain]
    order = [domain for domain, batches in per_domain.items() for _ in batches]
    permutation = torch.randperm(
        len(order), generator=torch.Generator().manual_seed(seed_for(seed, epoch, 1_000_003))
    )
    cursors = dict.fromkeys(per_domain, 0)
    plan: Plan = []
    for i in permutation.tolist():
        domain = order[i]
        plan.append((domain, per_domain[domain][cursors[domain]]))
        cursors[domain] += 1
    return plan


def eval_plan(
    samples: SeededSamples,
    batch_size: int,
    rank: int = 0,
    world: int = 1,
    domain: str | None = None,
) -> Plan:
    """Every sample once (of ``domain`` only, when given), in dataset order, batched per
    domain (sharded over ranks)."""
    plan: Plan = []
    for name in samples.domains if domain is None else [domain]:
        indices = list(samples.domain_range(name))[rank::world]
        plan += [(name, indices[i : i + batch_size]) for i in range(0, len(indices), batch_size)]
    return plan


class DomainBatches:
    """One loader over ``samples`` whose iteration over a plan yields each batch with its
    domain: ``for domain, images, labels in batches.iterate(plan, epoch)``.

    The loader (and its workers, kept alive between plans) is made once; each plan's batches
    are handed to its batch sampler before the iteration starts.
    """

    def __init__(self, samples: SeededSamples, workers: int = 0, pin_memory: bool = False):
        self.samples = samples
        self._sampler = PlanSampler()
        self._loader = DataLoader(
            samples,
            batch_sampler=self._sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=pin_memory,
        )

    def iterate(
        self, plan: Plan, epoch: int = 0, start: int = 0
    ) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
        """``(domain, images, labels)`` for the steps ``plan[start:]`` of ``epoch``."""
        self._sampler.set_plan(plan, epoch, start)
        for (domain, _), (images, labels) in zip(plan[start:], self._loader, strict=True):
            yield domain, images, labels
