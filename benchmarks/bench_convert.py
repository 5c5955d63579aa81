"""The converter (issue 12): per family, the parameters a new domain costs and its pack's file
size; inference throughput of the converted model (one domain, and a mixed batch of 4 domains)
against the original network, side by side in one run: batch 32, 224 px, eval mode,
channels_last for both, 2 threads. The mixed batch runs twice: with the eval-mode fast paths
(``layers.mixed_batch``) and with the general split-and-concatenate path they replace.
Each figure is the median (and range) of interleaved rounds.

    python benchmarks/bench_convert.py [--rounds 5] [--batch 32] [--size 224] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from multidomain.convert import build_network, convert
from multidomain.layers.per_domain import use_fast_mixed
from multidomain.metrics.params import count_parameters
from multidomain.models.packs import save_domain

FAMILIES = [
    "torchvision:mobilenet_v2",
    "torchvision:mobilenet_v3_small",
    "torchvision:mobilenet_v3_large",
    "torchvision:efficientnet_b0",
    "torchvision:convnext_tiny",
    "timm:mobilenetv2_100",
    "timm:mobilenetv3_small_100",
    "timm:mobilenetv3_large_100",
    "timm:efficientnet_b0",
    "timm:convnext_tiny",
]
TIMED = ["torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0"]
DOMAINS = {f"domain{i}": 10 for i in range(4)}


def costs(directory: Path) -> None:
    print(
        "| network | parameters | shared | new domain: own w/o head | head (10 classes) "
        "| pack file |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for source in FAMILIES:
        network = build_network(source)
        model = convert(network, {"a": 10})
        report = count_parameters(model)
        path = directory / f"{source.replace(':', '_')}.safetensors"
        save_domain(model, "a", path)
        own, head = report.per_domain["a"] - report.heads["a"], report.heads["a"]
        total = sum(p.numel() for p in network.parameters())
        print(
            f"| {source} | {total:,} | {report.shared:,} | {own:,} | {head:,} "
            f"| {path.stat().st_size / 1e6:.2f} MB |"
        )


def timed(call, iterations: int) -> float:
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(iterations):
            call()
        return time.perf_counter() - start


def throughput(source: str, batch: int, size: int, rounds: int, iterations: int) -> None:
    torch.manual_seed(0)
    network = build_network(source).eval().to(memory_format=torch.channels_last)
    model = convert(network, DOMAINS).eval()
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    mixed = [f"domain{i % 4}" for i in range(batch)]

    def mixed_batch(fast: bool):
        def call():
            use_fast_mixed(model, fast)
            return model(x, mixed)

        return call

    calls = {
        "original": lambda: network(x),
        "converted, one domain": lambda: model(x, "domain0"),
        "converted, mixed 4 domains": mixed_batch(True),
        "converted, mixed 4 domains, general path": mixed_batch(False),
    }
    for call in calls.values():
        timed(call, 1)  # warm-up
    rates = {name: [] for name in calls}
    for _ in range(rounds):  # interleaved, so that load on the machine hits every variant
        for name, call in calls.items():
            rates[name].append(batch * iterations / timed(call, iterations))
    base = statistics.median(rates["original"])
    single = statistics.median(rates["converted, one domain"])
    for name, values in rates.items():
        median = statistics.median(values)
        vs_single = f"{median / single:.2f}x" if "mixed" in name else ""
        print(
            f"| {source} | {name} | {median:.1f} ({min(values):.1f}-{max(values):.1f}) "
            f"| {median / base:.2f}x | {vs_single} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2, help="forward passes per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads\n")
    with tempfile.TemporaryDirectory() as directory:
        costs(Path(directory))
    print(
        f"\nbatch {args.batch}, {args.size} px, eval, channels_last, "
        f"{args.rounds} rounds of {args.iterations} passes: images/s median (range)\n"
    )
    print("| network | variant | images/s | vs original | mixed vs one domain |")
    print("|---|---|---:|---:|---:|")
    for source in TIMED:
        throughput(source, args.batch, args.size, args.rounds, args.iterations)


if __name__ == "__main__":
    main()
