"""``predict`` throughput (issue 13), side by side in one run:

1. the mini-decathlon's test images of every domain as one shuffled list, predicted in mixed
   batches of 64 (images of many domains share a pass through the trunk) against the same
   images grouped per domain (every batch one domain): end to end (decode, crop, normalise,
   forward) and the forward alone (images decoded beforehand). Target: mixed >= 0.8x grouped.
   The forward alone also runs the mixed batches through the general split-and-concatenate
   path that the eval-mode fast paths (``layers.mixed_batch``) replace.
2. one domain exported to ONNX, run by ONNX Runtime, against PyTorch eager (the multi-domain
   model called with that domain), at batch 1 and 32.

Each figure is the median of interleaved rounds, with the spread (min-max) over them.

    python benchmarks/bench_predict.py [--data ~/.cache/multidomain/mini-decathlon-36]
        [--run RUN] [--width 0.5] [--rounds 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from multidomain import create_model
from multidomain.data.benchmark import load_benchmark
from multidomain.data.dataset import DecathlonDataset
from multidomain.data.images import load_rgb
from multidomain.engine.export import export_domain, run_onnx
from multidomain.engine.model_folder import model_dir
from multidomain.engine.predict import Request, batches, domain_transforms, predict
from multidomain.layers.per_domain import use_fast_mixed
from multidomain.models.cards import DomainCard, Preprocess
from multidomain.models.packs import load_model


def build_model(root: Path, run: Path | None, width: float):
    """The run's model, or an untrained one with the benchmark's domains and preprocessing
    (throughput does not depend on the weights)."""
    if run is not None:
        return load_model(model_dir(run)).eval()
    benchmark = load_benchmark(root)
    torch.manual_seed(0)
    classes = {name: info.num_classes for name, info in benchmark.domains.items()}
    model = create_model("resnet26_dw", classes, width=width).eval()
    for name, info in benchmark.domains.items():
        preprocess = Preprocess(
            info.crop, info.mean, info.std, benchmark.image_size, benchmark.crop_size
        )
        model.cards[name] = DomainCard((), preprocess)
    return model


def test_requests(root: Path, domains: list[str]) -> list[Request]:
    requests = [
        Request(root / name, domain)
        for domain in domains
        for name in DecathlonDataset(root, domain, "test").file_names
    ]
    random.Random(0).shuffle(requests)
    return requests


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rounds(configs: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    """Seconds of each configuration per round, the configurations interleaved."""
    for fn in configs.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(n):
        for name, fn in configs.items():
            times[name].append(timed(fn))
    return times


def rate(count: int, seconds: list[float]) -> tuple[float, float, float]:
    """Median, min and max of ``count / seconds``."""
    rates = [count / s for s in seconds]
    return statistics.median(rates), min(rates), max(rates)


def show(title: str, count: int, times: dict[str, list[float]], baseline: str) -> None:
    print(f"\n{title}", flush=True)
    base = statistics.median(count / s for s in times[baseline])
    for name, seconds in times.items():
        median, low, high = rate(count, seconds)
        print(f"  {name:<24} {median:9.0f} img/s  ({low:.0f}-{high:.0f})  {median / base:5.2f}x")


def forward_only(
    model, requests: list[Request], batch: int, mixed: bool, fast: bool = True
) -> Callable[[], None]:
    transforms = domain_transforms(model, (r.domain for r in requests))
    images = [transforms[r.domain](load_rgb(r.image)) for r in requests]
    plan = [
        (torch.stack([images[i] for i in idx]), [requests[i].domain for i in idx])
        for idx in batches(requests, batch, mixed)
    ]

    @torch.no_grad()
    def run() -> None:
        use_fast_mixed(model, fast)
        for x, domains in plan:
            model(x, domains if len(set(domains)) > 1 else domains[0])

    return run


def bench_mixed(model, requests: list[Request], batch: int, n: int) -> None:
    configs = {
        "grouped end-to-end": lambda: predict(model, requests, batch_size=batch, mixed=False),
        "mixed end-to-end": lambda: predict(model, requests, batch_size=batch, mixed=True),
    }
    show(
        f"predict, batch {batch}: end to end",
        len(requests),
        rounds(configs, n),
        "grouped end-to-end",
    )
    configs = {
        "grouped forward": forward_only(model, requests, batch, mixed=False),
        "mixed forward": forward_only(model, requests, batch, mixed=True),
        "mixed, general path": forward_only(model, requests, batch, mixed=True, fast=False),
    }
    show(
        f"predict, batch {batch}: forward only",
        len(requests),
        rounds(configs, n),
        "grouped forward",
    )


def bench_onnx(model, domain: str, n: int) -> None:
    size = model.card(domain).preprocess.image_size
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{domain}.onnx"
        export_domain(model, domain, "onnx", path)
        session = run_onnx(path, threads=torch.get_num_threads())
        for batch in (1, 32):
            x = torch.randn(batch, 3, size, size)
            repeat = max(1, 256 // batch)

            @torch.no_grad()
            def eager(x=x, repeat=repeat) -> None:
                for _ in range(repeat):
                    model(x, domain)

            def onnx(x=x, repeat=repeat) -> None:
                for _ in range(repeat):
                    session(x)

            times = rounds({"pytorch eager": eager, "onnx runtime": onnx}, n)
            show(f"export: domain {domain}, batch {batch}", batch * repeat, times, "pytorch eager")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=Path("~/.cache/multidomain/mini-decathlon-36").expanduser()
    )
    parser.add_argument("--run", type=Path, help="a trained run (default: an untrained model)")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_model(args.data, args.run, args.width)
    domains = [d for d in model.domains if d in load_benchmark(args.data).domains]
    requests = test_requests(args.data, domains)
    print(
        f"{len(requests)} test images of {len(domains)} domains, torch threads "
        f"{torch.get_num_threads()}, width {model.config.width}"
    )
    bench_mixed(model, requests, args.batch, args.rounds)
    bench_onnx(model, domains[0], args.rounds)


if __name__ == "__main__":
    main()
