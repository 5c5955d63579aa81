"""The training pipeline against the bare training step (issues 3 and 4), side by side.

For the paper's resolution (72 px images, 64 px crops, width 1) and the demo's (36 px, 32 px
crops, width 0.5) it measures, on the mini-decathlon:

- loader: images/s the engine's training loader delivers alone (default workers, all domains);
- step: images/s the bare ``resnet26_dw`` training step consumes (random tensors, batch 64);
- engine: images/s of ``multidomain train`` end to end (recipe ``joint`` over every domain:
  loading, schedule, seeding, logging and the step), after a warm-up.

and prints loader/step (target >= 1.5: the loader is not the bottleneck) and engine/step
(target >= 0.85: the engine adds little).

    python benchmarks/bench_pipeline.py [--steps 30] [--cache data_cache]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from multidomain import create_model
from multidomain.data.offline.builder import prepare_offline
from multidomain.engine.batches import epoch_plan
from multidomain.engine.config import load_config
from multidomain.engine.train import Trainer

SETTINGS = {
    "paper (72 px, crop 64, width 1)": (72, 1.0),
    "demo (36 px, crop 32, width 0.5)": (36, 0.5),
}
BATCH = 64


def engine_config(root: Path, width: float, steps: int, workers: int | None):
    from multidomain.data.benchmark import load_benchmark

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
        ],
    )


def measure_engine(trainer: Trainer, warmup: int, steps: int) -> float:
    """Images/s of ``steps`` engine steps after ``warmup`` steps (checkpoint writes excluded)."""
    trainer.save = lambda *args, **kwargs: None  # time the training, not the final checkpoint
    trainer.config.run.max_steps = warmup
    trainer.train_one_epoch(0)
    trainer.config.run.max_steps = warmup + steps
    start = time.perf_counter()
    trainer.train_one_epoch(0)
    return steps * BATCH / (time.perf_counter() - start)


def measure_loader(trainer: Trainer, batches: int) -> float:
    plan = epoch_plan(trainer.train_samples, BATCH, 0, 1)
    trainer.train_sampler.set_plan(plan[: batches + 2], epoch=1)
    iterator = iter(trainer.train_loader)
    next(iterator), next(iterator)  # workers started
    start = time.perf_counter()
    images = sum(len(labels) for _, labels in iterator)
    return images / (time.perf_counter() - start)


def measure_step(crop: int, width: float, steps: int) -> float:
    model = create_model("resnet26_dw", {"d": 10}, width=width).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(BATCH, 3, crop, crop), torch.randint(0, 10, (BATCH,))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x, "d"), y).backward()
        optimizer.step()

    step(), step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
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
        crop = round(size * 64 / 72)
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = Trainer(engine_config(root, width, args.steps, args.workers), Path(run_dir))
            loader = measure_loader(trainer, 4 * args.steps)
            step = measure_step(crop, width, args.steps)
            engine = measure_engine(trainer, 3, args.steps)
        print(f"\n[{name}] workers={trainer.train_loader.num_workers}")
        print(f"  loader {loader:8.1f} img/s   step {step:7.1f} img/s   engine {engine:7.1f} img/s")
        print(
            f"  loader/step = {loader / step:.2f} (target >= 1.5)   "
            f"engine/step = {engine / step:.2f} (target >= 0.85)"
        )


if __name__ == "__main__":
    main()
