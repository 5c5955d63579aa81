"""One per-domain layer on a mixed batch (issues 12 and 13): the eval-mode fast path
(``layers.mixed_batch``) against the general path (each domain's module on its slice, then a
concatenation) and against one domain's module on the whole batch, side by side. CPU time of
this process (``process_time``), median of interleaved rounds; channels_last batch norms of
4 domains at the shapes of MobileNetV3-Small (224 px) and of the predict benchmark (36 px).

    python benchmarks/bench_mixed_batch.py [--rounds 9] [--calls 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from multidomain.layers import PerDomain, Route
from multidomain.layers.per_domain import use_fast_mixed

SHAPES = [(64, 16, 36, 36), (64, 64, 18, 18), (32, 16, 112, 112), (32, 96, 14, 14)]
DOMAINS = [f"domain{i}" for i in range(4)]


def variants(shape: tuple[int, ...]) -> dict:
    n, c = shape[:2]
    layer = PerDomain({name: nn.BatchNorm2d(c, eps=1e-3) for name in DOMAINS}).eval()
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    route = Route.for_samples(sorted(DOMAINS[i % 4] for i in range(n)), DOMAINS)
    one = Route.for_domain(DOMAINS[0], n)

    def mixed(fast: bool):
        def call():
            use_fast_mixed(layer, fast)
            return layer(x, route)

        return call

    return {
        "one domain": lambda: layer(x, one),
        "mixed, general": mixed(False),
        "mixed, fast": mixed(True),
    }


def cpu_ms(call, calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        call()
    return (time.process_time() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch norm of 4 domains\n")
    print("| activation | one domain | mixed, general path | mixed, fast path | general / fast |")
    print("|---|---:|---:|---:|---:|")
    with torch.no_grad():
        for shape in SHAPES:
            calls = variants(shape)
            times = {name: [] for name in calls}
            for _ in range(args.rounds):
                for name, call in calls.items():
                    times[name].append(cpu_ms(call, args.calls))
            ms = {name: statistics.median(t) for name, t in times.items()}
            cells = " | ".join(f"{v:.2f} ms" for v in ms.values())
            ratio = ms["mixed, general"] / ms["mixed, fast"]
            print(f"| {' x '.join(map(str, shape))} | {cells} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
