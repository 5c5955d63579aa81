"""Throughput of ``resnet26_dw``: domain machinery vs plain layers, mixed vs single domain,
channels-last vs contiguous memory (issue 2). Batch 64 at 64x64, eval and train step, side by
side in one run; each figure is the median of interleaved rounds.

    python benchmarks/bench_model.py [--rounds 5] [--batch 64] [--size 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from multidomain import create_model
from plain_resnet26_dw import PlainResNet26DW

DOMAINS = {f"domain{i}": 10 for i in range(10)}


def make_step(model, x, target, domain, train: bool) -> Callable[[], None]:
    call = (lambda: model(x)) if domain is None else (lambda: model(x, domain))
    if not train:
        model.eval()

        def step() -> None:
            with torch.no_grad():
                call()

        return step
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(call(), target).backward()
        optimizer.step()

    return step


def configurations(batch: int, size: int) -> dict[str, tuple]:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    target = torch.randint(0, 10, (batch,))
    mixed = [f"domain{i % 10}" for i in range(batch)]
    configs = {}
    for fmt_name, channels_last in (("contiguous", False), ("channels_last", True)):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        plain = PlainResNet26DW(10).to(memory_format=fmt)
        ours = create_model("resnet26_dw", DOMAINS, channels_last=channels_last)
        configs[f"plain/{fmt_name}"] = (plain, x.contiguous(memory_format=fmt), target, None)
        configs[f"single/{fmt_name}"] = (ours, x, target, "domain0")
        configs[f"mixed10/{fmt_name}"] = (ours, x, target, mixed)
    return configs


def measure(steps: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """Seconds per step of every round. Configurations are interleaved and their order rotates
    every round, so slow phases of a shared machine hit them all alike."""
    for step in steps.values():
        step()  # warm-up
    names = list(steps)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return times


def speed_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Speed of ``a`` over speed of ``b``: the median over rounds of the two measured in the
    same round (robust to the machine's load drifting between rounds)."""
    return statistics.median(tb / ta for ta, tb in zip(times[a], times[b], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
        f"{args.size}x{args.size}, {args.rounds} rounds"
    )
    configs = configurations(args.batch, args.size)
    for mode in ("eval", "train"):
        steps = {
            name: make_step(model, x, target, domain, mode == "train")
            for name, (model, x, target, domain) in configs.items()
        }
        times = measure(steps, args.rounds)
        print(f"\n[{mode}] images/s (best of {args.rounds} rounds)")
        for name, values in times.items():
            print(f"  {name:<24} {args.batch / min(values):8.1f}")
        print("  ratios: median over rounds of paired measurements")
        for fmt in ("contiguous", "channels_last"):
            machinery = speed_ratio(times, f"single/{fmt}", f"plain/{fmt}")
            mixed = speed_ratio(times, f"mixed10/{fmt}", f"single/{fmt}")
            print(
                f"  {fmt}: single/plain {machinery:.3f} (target >= 0.95), "
                f"mixed10/single {mixed:.3f} (target >= 0.8)"
            )
        fmt_ratio = speed_ratio(times, "single/channels_last", "single/contiguous")
        print(f"  single channels_last/contiguous = {fmt_ratio:.2f}")


if __name__ == "__main__":
    main()
