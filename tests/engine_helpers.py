"""Shared pieces of the engine tests: a tiny mini-decathlon, tiny run configs, weight readers.

Every run here is width 1/8 on 20 px images with batches of 8 (well under a second a run), built
once per session and shared between modules through :func:`once`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file

from multidomain.data.offline.builder import prepare_offline
from multidomain.engine.checkpoint import latest_checkpoint
from multidomain.engine.config import TrainConfig, load_config
from multidomain.engine.train import run_training
from multidomain.io import read_json

DOMAINS = ["animals", "digits", "textures"]  # 10, 10 and 3 classes
MAX_PER_CLASS = 12  # train/val/test per class: 8/2/2 -> animals and digits 10 steps an epoch
STEPS_PER_EPOCH = {"animals": 10, "digits": 10, "textures": 3}
TINY = [
    "model.width=0.125",
    "data.batch_size=8",
    "data.eval_batch_size=32",
    "data.workers=0",
    "run.progress=false",
    "run.device=cpu",
    "optim.lr_milestones=[]",
]

T = TypeVar("T")
_CACHE: dict[str, object] = {}


def once(key: str, build: Callable[[], T]) -> T:
    """``build()`` the first time ``key`` is asked for in this session, the cached value after.

    Session fixtures imported into several modules are built once per module; this is shared.
    """
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]  # type: ignore[return-value]


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Width-1/8 models are too small to gain from intra-op threads, and on a loaded 2-core
    machine two threads contend (a step went from 15 ms to 3.6 s), so the tests use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def mini_root(tmp_path_factory) -> Path:
    """The session's tiny mini-decathlon (animals, digits, textures at 20 px)."""
    return once(
        "mini",
        lambda: prepare_offline(
            tmp_path_factory.mktemp("mini"),
            image_size=20,
            max_per_class=MAX_PER_CLASS,
            domains=DOMAINS,
        ),
    )


def tiny_config(
    root: Path,
    *overrides: str,
    recipe: str = "pretrain",
    domains: tuple[str, ...] = ("animals",),
    epochs: int = 2,
) -> TrainConfig:
    return load_config(
        None,
        [
            f"recipe={recipe}",
            f"data.root={root}",
            f"data.domains=[{', '.join(domains)}]",
            f"optim.epochs={epochs}",
            *TINY,
            *overrides,
        ],
    )


def pretrained_run(tmp_path_factory) -> Path:
    """A finished tiny pretraining run on animals (2 epochs, BN guard off), shared."""

    def build() -> Path:
        run_dir = tmp_path_factory.mktemp("pretrain") / "run"
        run_training(tiny_config(mini_root(tmp_path_factory), "run.bn_guard=false"), run_dir)
        return run_dir

    return once("pretrain", build)


def adapted_run(tmp_path_factory) -> Path:
    """:func:`pretrained_run` adapted to digits and textures (2 epochs, BN guard off), shared."""

    def build() -> Path:
        run_dir = tmp_path_factory.mktemp("adapt") / "run"
        config = tiny_config(
            mini_root(tmp_path_factory),
            "run.bn_guard=false",
            f"model.init={pretrained_run(tmp_path_factory)}",
            recipe="adapt",
            domains=("digits", "textures"),
        )
        run_training(config, run_dir)
        return run_dir

    return once("adapt", build)


def read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of every ``.safetensors`` file under ``folder``, keyed ``file:tensor``."""
    tensors = {}
    for path in sorted(Path(folder).rglob("*.safetensors")):
        relative = path.relative_to(folder).as_posix()
        for key, value in load_file(path).items():
            tensors[f"{relative}:{key}"] = value
    return tensors


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    """Same keys, and every tensor bit-identical (dtype, shape and values)."""
    assert sorted(a) == sorted(b)
    assert a, "no tensors to compare"
    different = [
        k
        for k in a
        if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or not torch.equal(a[k], b[k])
    ]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def assert_same_run_weights(reference: Path, other: Path) -> None:
    """The final models and the latest checkpoints' ``model/`` and ``best/`` are bit-identical."""
    assert_same_tensors(read_tensors(reference / "model"), read_tensors(other / "model"))
    ref_ckpt, other_ckpt = latest_checkpoint(reference), latest_checkpoint(other)
    assert read_json(ref_ckpt / "state.json") == read_json(other_ckpt / "state.json")
    for part in ("model", "best"):
        assert_same_tensors(read_tensors(ref_ckpt / part), read_tensors(other_ckpt / part))


def snapshot_files(folder: Path) -> dict[str, bytes]:
    """The bytes of every file under ``folder`` (relative path -> content)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    }


def leftovers(run_dir: Path) -> list[str]:
    """Temporary files or folders (``.name...``) that a crash-safe writer should have removed
    (the run folder's ``.lock`` is not one: it stays, and the kernel releases it)."""
    hidden = Path(run_dir).rglob(".*")
    return sorted(os.path.relpath(p, run_dir) for p in hidden if p != Path(run_dir) / ".lock")
