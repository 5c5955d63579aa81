"""The training pipeline against the bare training step (issues 3 and 4), side by side.

For the paper's resolution (72 px images, 64 px crops, width 1) and the demo's (36 px, 32 px
crops, width 0.5) it measures, on the mini-decathlon, once with every file decoded each epoch
(``data.cache_images=false``, as in a first epoch) and once with decoded images cached (later
epochs, the CPU default):

- loader: images/s the engine's training loader delivers alone (default workers, all domains);
- step: images/s the bare ``resnet26_dw`` training step consumes (one domain, pre-made random
  batches of 64 with the shapes of the engine's batches: the recipe trains ``center_crop``
  domains on the full 36/72 px image and the others on 32/64 px crops);
- engine: images/s of ``multidomain train`` end to end (recipe ``joint`` over every domain:
  loading, schedule, seeding, logging and the step), timed in blocks that alternate with
  blocks of the bare step, so both see the same machine load.

and prints loader/step (target >= 1.5: the loader is not the bottleneck) and engine/step
(target >= 0.85: the engine adds little).

    python benchmarks/bench_pipeline.py [--rounds 5] [--only demo] [--cache data_cache]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from multidomain import create_model
from multidomain.data.benchmark import load_benchmark
from multidomain.data.offline.builder import prepare_offline
from multidomain.engine.batches import epoch_plan
from multidomain.engine.config import load_config
from multidomain.engine.train import Trainer

SETTINGS = {
    "paper (72 px, crop 64, width 1)": (72, 1.0),
    "demo (36 px, crop 32, width 0.5)": (36, 0.5),
}
BATCH = 64


def engine_config(root: Path, width: float, steps: int, workers: int | None, cache: bool):
    domains = sorted(load_benchmark(root).domains)
    return load_config(
        None,
        [
            "recipe=joint",
            f"data.root={root}",
            f"data.domains=[{','.join(domains)}]",
            f"data.batch_size={BATCH}",
            f"model.width={width}",
            "optim.epochs=1",
            f"run.max_steps={steps}",
            "run.progress=false",
            "run.checkpoint_every=100000",
            "run.log_every=100000",
            f"data.workers={'null' if workers is None else workers}",
            f"data.cache_images={str(cache).lower()}",
        ],
    )


def engine_block(trainer: Trainer, steps: int) -> float:
    """Seconds for the engine's next ``steps`` training steps (checkpoint writes excluded)."""
    trainer.config.run.max_steps = trainer.state.global_step + steps
    start = time.perf_counter()
    epoch = trainer.state.epoch
    trainer.train_one_epoch(epoch, trainer.epoch_plan(epoch), trainer.train_batches)
    return time.perf_counter() - start


def measure_loader(trainer: Trainer, batches: int | None = None) -> float:
    """Images/s of the training loader over ``batches`` batches (default: a whole epoch)."""
    plan = epoch_plan(trainer.train_samples, BATCH, 0, 1)
    plan = plan if batches is None else plan[: batches + 2]
    iterator = trainer.train_batches.iterate(plan, epoch=1)
    next(iterator), next(iterator)  # workers started
    start = time.perf_counter()
    images = sum(len(labels) for _, _, labels in iterator)
    return images / (time.perf_counter() - start)


def training_shapes(trainer: Trainer) -> dict[str, tuple[int, ...]]:
    """Each domain's training image shape under the recipe: 32/64 px random crops for
    ``random_crop`` domains, the full 36/72 px image for ``center_crop`` ones."""
    samples = trainer.train_samples
    return {d: tuple(samples[(0, samples.domain_range(d).start)][0].shape) for d in samples.domains}


def bare_step(width: float, domain_order: list[str], shapes: dict[str, tuple[int, ...]]):
    """A function running the bare training step ``n`` times and returning the seconds.

    Step ``i`` gets a random batch of the shape the engine's ``i``-th batch has (the recipe
    trains some domains on crops and some on full images, so images differ in cost): both
    sides do the same arithmetic, and the ratio measures what the engine adds.
    """
    model = create_model("resnet26_dw", {"d": 10}, width=width).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    # Distinct batches, as in training: re-feeding one cached tensor every step measured up to
    # 25% faster on this machine (memory reuse), which no real training loop gets.
    batches = {
        shape: [(torch.randn(BATCH, *shape), torch.randint(0, 10, (BATCH,))) for _ in range(32)]
        for shape in set(shapes.values())
    }
    cursor = 0

    def run(n: int) -> float:
        nonlocal cursor
        start = time.perf_counter()
        for _ in range(n):
            x, y = batches[shapes[domain_order[cursor % len(domain_order)]]][cursor % 32]
            cursor += 1
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x, "d"), y).backward()
            optimizer.step()
        return time.perf_counter() - start

    return run


def compare(trainer: Trainer, bare, steps: int, rounds: int) -> tuple[float, float, float]:
    """Engine and bare step in alternating blocks; images/s of each (best block) and the
    median over rounds of the paired engine/bare speed ratio."""
    trainer.save = lambda *args, **kwargs: None  # time the training, not checkpoint writes
    engine_block(trainer, 2), bare(2)  # warm-up
    engine_times, bare_times = [], []
    for _ in range(rounds):
        engine_times.append(engine_block(trainer, steps))
        bare_times.append(bare(steps))
    ratio = statistics.median(b / e for e, b in zip(engine_times, bare_times, strict=True))
    images = steps * BATCH
    return images / min(engine_times), images / min(bare_times), ratio


def measure(root: Path, width: float, cached: bool, args) -> tuple[int, float, float, float, float]:
    """Workers, loader img/s, bare step img/s, engine img/s, paired engine/step ratio."""
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(engine_config(root, width, 10**6, args.workers, cached), Path(run_dir))
        if cached:
            measure_loader(trainer)  # one epoch decodes every image into the cache
        loader = measure_loader(trainer, 4 * args.steps)
        order = [domain for domain, _ in epoch_plan(trainer.train_samples, BATCH, 0, 0)]
        bare = bare_step(width, order, training_shapes(trainer))
        engine, step, ratio = compare(trainer, bare, args.steps, args.rounds)
        return trainer.train_loader.num_workers, loader, step, engine, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path("data_cache"))
    parser.add_argument("--workers", type=int, help="loader workers (default: the engine's)")
    parser.add_argument("--only", choices=("paper", "demo"), help="run one setting")
    args = parser.parse_args()
    torch.set_flush_denormal(True)  # as the engine does on the CPU
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}")
    for name, (size, width) in SETTINGS.items():
        if args.only and not name.startswith(args.only):
            continue
        root = prepare_offline(args.cache / f"mini-decathlon-{size}", image_size=size)
        for cached, when in ((False, "files decoded every epoch"), (True, "decoded images cached")):
            workers, loader, step, engine, ratio = measure(root, width, cached, args)
            print(f"\n[{name}] {when} (data.cache_images={str(cached).lower()}), workers={workers}")
            print(f"  loader {loader:8.1f} img/s   step {step:7.1f} img/s   engine {engine:7.1f}")
            print(
                f"  loader/step = {loader / step:.2f} (target >= 1.5)   "
                f"engine/step = {ratio:.2f} (target >= 0.85; median of paired rounds)"
            )


if __name__ == "__main__":
    main()
