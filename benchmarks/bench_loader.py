"""Images per second delivered by the training data loader on the mini-decathlon (issue 3).

Builds the mini-decathlon into a cache folder when missing, then for each domain times the
training loader (batch 64, the recipe's training transform: random crop 64 of 72 or center
crop 72) and the decoding of single images. ``measure_loader_throughput`` is importable, so a
model benchmark can print the loader's rate next to its training-step rate.

    python benchmarks/bench_loader.py [--root DIR] [--batches 20] [--workers N]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from multidomain.data.benchmark import load_benchmark
from multidomain.data.dataset import DecathlonDataset
from multidomain.data.images import load_rgb
from multidomain.data.loader import build_loader, default_workers
from multidomain.data.offline.builder import prepare_offline

BATCH = 64
DEFAULT_ROOT = Path("data_cache/mini-decathlon")


def _batches(loader, count: int):
    """``count`` batches, cycling over epochs (small domains hold less than one batch run)."""
    return itertools.islice(itertools.chain.from_iterable(itertools.repeat(loader)), count)


def measure_loader_throughput(
    root: str | Path, domain: str, batches: int = 20, workers: int | None = None
) -> float:
    """Training-loader images/s of one domain, after one warm-up batch (workers started)."""
    dataset = DecathlonDataset(root, domain, "train")
    loader = build_loader(dataset, BATCH, train=True, workers=workers, drop_last=False)
    next(iter(loader))  # start the workers before timing
    images = 0
    start = time.perf_counter()
    for batch, _labels in _batches(loader, batches):
        images += len(batch)
    return images / (time.perf_counter() - start)


def decode_and_transform_ms(root: str | Path, domain: str, count: int = 200) -> tuple[float, float]:
    """Milliseconds per image to decode (PIL, RGB) and to apply the training transform."""
    dataset = DecathlonDataset(root, domain, "train")
    paths = [Path(root) / name for name in dataset.file_names[:count]]
    start = time.perf_counter()
    images = [load_rgb(path) for path in paths]
    decode = time.perf_counter() - start
    start = time.perf_counter()
    for image in images:
        dataset.transform(image)
    transform = time.perf_counter() - start
    return 1000 * decode / len(paths), 1000 * transform / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    prepare_offline(args.root)
    print(f"mini-decathlon at {args.root} (ready in {time.perf_counter() - start:.1f} s)")
    workers = default_workers() if args.workers is None else args.workers
    print(f"batch {BATCH}, {workers} loader worker(s), {args.batches} batches per domain")
    print(f"{'domain':<16}{'loader img/s':>14}{'decode ms/img':>15}{'transform ms/img':>18}")
    rates = []
    for domain in sorted(load_benchmark(args.root).domains):
        rate = measure_loader_throughput(args.root, domain, args.batches, workers)
        decode, transform = decode_and_transform_ms(args.root, domain)
        rates.append(rate)
        print(f"{domain:<16}{rate:>14.0f}{decode:>15.3f}{transform:>18.3f}")
    # Harmonic mean: the rate of a run that draws the same number of batches from every domain.
    overall = len(rates) / sum(1 / rate for rate in rates)
    print(f"loader images/s: {overall:.0f}")


if __name__ == "__main__":
    main()
