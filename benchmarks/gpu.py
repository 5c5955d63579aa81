"""The GPU path, measured in one run on one GPU (issue 15); sized to finish in under 5 minutes.

    python benchmarks/gpu.py [--root DIR] [--steps 30] [--batch 128] [--no-compile]

Prints, all measured in this run:

1. the card, torch/CUDA versions and the TF32 settings in force;
2. the card's matmul peak (8192^3 matmuls, fp32 as configured and bf16), TFLOP/s;
3. training images/s of ``resnet26_dw`` (width 1, 10 domains, one domain per batch, 64x64),
   fp32 vs bf16, eager vs ``torch.compile`` (``engine.compiled.compile_model``), and the achieved
   TFLOP/s of each (FLOPs of one step counted by ``torch.utils.flop_counter``) against the
   peak of the same precision;
4. inference images/s of a mixed batch (one domain per sample, 10 domains) against a
   single-domain batch (bf16, eager);
5. the training loader's images/s (the engine's seeded one-domain-per-batch loader on the
   mini-decathlon, training transform, pinned memory) for several workers / persistent
   workers / prefetch settings, against the images/s the fastest training step consumes.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from multidomain.engine.batches import PlanSampler, epoch_plan
from multidomain.engine.compiled import compile_model
from multidomain.engine.evaluate import autocast

DOMAINS = {f"domain{i}": 10 + 10 * i for i in range(10)}
SIZE = 64


def timed(fn, repeats: int) -> float:
    """Seconds per call of ``fn`` (CUDA synchronised), after the caller's warm-up."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def matmul_peak(dtype: torch.dtype, n: int = 8192, repeats: int = 20) -> float:
    """TFLOP/s of an ``n``-cubed matmul in ``dtype`` (fp32 honours the TF32 settings)."""
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    return 2 * n**3 / timed(lambda: a @ b, repeats) / 1e12


def build_model():
    from multidomain.models import create_model

    torch.manual_seed(0)
    return create_model("resnet26_dw", dict(DOMAINS)).cuda()


def train_step_fn(net, optimizer, precision: str, batch: int):
    """A closure doing one training step on a fixed batch, cycling the domains."""
    x = torch.randn(batch, 3, SIZE, SIZE, device="cuda")
    domains = itertools.cycle(DOMAINS)

    def step():
        domain = next(domains)
        labels = torch.randint(0, DOMAINS[domain], (batch,), device="cuda")
        with autocast(torch.device("cuda"), precision):
            loss = F.cross_entropy(net(x, domain).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_flops(model, precision: str, batch: int) -> int:
    """FLOPs of one training step (forward and backward), counted on the eager model."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    step = train_step_fn(model, optimizer, precision, batch)
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def training_rates(args, peaks: dict[str, float]) -> float:
    print(f"\n3. training, resnet26_dw width 1, {len(DOMAINS)} domains, batch {args.batch}, 64x64")
    print(f"{'precision':>9} {'mode':>9} {'images/s':>10} {'TFLOP/s':>8} {'of peak':>8}")
    best = 0.0
    for precision in ("fp32", "bf16"):
        for compiled in (False, True) if args.compile else (False,):
            model = build_model().train()
            flops = step_flops(model, precision, args.batch)
            net = compile_model(model, len(DOMAINS)) if compiled else model
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            step = train_step_fn(net, optimizer, precision, args.batch)
            for _ in range(2 * len(DOMAINS)):  # warm-up: every domain compiled (train mode)
                step()
            seconds = timed(step, args.steps)
            rate = args.batch / seconds
            achieved = flops / seconds / 1e12
            best = max(best, rate)
            mode = "compiled" if compiled else "eager"
            print(
                f"{precision:>9} {mode:>9} {rate:>10.0f} {achieved:>8.1f} "
                f"{achieved / peaks[precision]:>8.1%}"
            )
            del net, model, optimizer
            torch._dynamo.reset()
    return best


@torch.no_grad()
def mixed_inference(args) -> None:
    model = build_model().eval()
    x = torch.randn(args.batch, 3, SIZE, SIZE, device="cuda")
    names = list(DOMAINS)
    mixed = [names[i % len(names)] for i in range(args.batch)]

    def run(domain):
        with autocast(torch.device("cuda"), "bf16"):
            model(x, domain)

    for _ in range(3):
        run(names[0])
        run(mixed)
    single = args.batch / timed(lambda: run(names[0]), args.steps)
    many = args.batch / timed(lambda: run(mixed), args.steps)
    print(f"\n4. inference, bf16 eager, batch {args.batch}")
    print(f"single domain {single:.0f} images/s; mixed, 10 domains {many:.0f} images/s; ")
    print(f"mixed / single = {many / single:.3f}")


def loader_rates(args, consumed: float) -> None:
    from multidomain.data.benchmark import load_benchmark
    from multidomain.data.offline.builder import prepare_offline
    from multidomain.engine import data_setup
    from multidomain.engine.config import load_config

    root = prepare_offline(args.root, image_size=72)
    benchmark = load_benchmark(root)

    def samples_of(domains):
        config = load_config(None, [f"data.root={root}", f"data.domains=[{', '.join(domains)}]"])
        return data_setup.build_samples(root, config.data, benchmark, 0)[0]

    every = samples_of(benchmark.domains)  # keep the domains that fill one batch
    domains = [d for d in every.domains if len(every.domain_range(d)) >= args.batch]
    samples = samples_of(domains)
    plan = epoch_plan(samples, args.batch, 0, 0)
    print(f"\n5. training loader, mini-decathlon ({len(domains)} domains), batch {args.batch}")
    print(f"the fastest training step consumes {consumed:.0f} images/s")
    print(f"{'workers':>7} {'persistent':>10} {'prefetch':>8} {'images/s':>9} {'/ step':>7}")
    cores = os.cpu_count() or 1
    for workers, persistent, prefetch in [
        (0, False, None),
        (min(4, cores), False, 2),
        (min(4, cores), True, 2),
        (min(8, cores), True, 4),
        (cores, True, 4),
    ]:
        sampler = PlanSampler()
        loader = DataLoader(
            samples,
            batch_sampler=sampler,
            num_workers=workers,
            persistent_workers=persistent and workers > 0,
            prefetch_factor=prefetch if workers > 0 else None,
            pin_memory=True,
        )
        epochs = 2  # the second epoch shows what persistent workers save
        start, images = time.perf_counter(), 0
        for epoch in range(epochs):
            sampler.set_plan(plan[: args.loader_batches], epoch)
            for batch, _labels in loader:
                batch.cuda(non_blocking=True)
                images += batch.shape[0]
        torch.cuda.synchronize()
        rate = images / (time.perf_counter() - start)
        print(
            f"{workers:>7} {persistent!s:>10} {prefetch!s:>8} {rate:>9.0f} {rate / consumed:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("data_cache/mini-decathlon"))
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--loader-batches", type=int, default=40)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device")
    start = time.perf_counter()
    print(
        f"1. {torch.cuda.get_device_name()}; torch {torch.__version__}, CUDA {torch.version.cuda}"
    )
    print(
        f"TF32: matmul {torch.backends.cuda.matmul.allow_tf32}, cudnn "
        f"{torch.backends.cudnn.allow_tf32}, float32_matmul_precision "
        f"{torch.get_float32_matmul_precision()!r}"
    )
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"\n2. matmul peak: fp32 {peaks['fp32']:.1f} TFLOP/s, bf16 {peaks['bf16']:.1f} TFLOP/s")
    consumed = training_rates(args, peaks)
    mixed_inference(args)
    loader_rates(args, consumed)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
