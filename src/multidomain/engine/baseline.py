"""Measure the mini-decathlon's score baselines the way the Decathlon did (PAPER.md section 6):
the pretrained network with every parameter fine-tuned per domain (recipe ``finetune`` of the
version: version 2's is the standard ResNet-26, the comparison table's ``finetune`` row),
evaluated on test, mean over seeds. The result is written into the data root's
``benchmark.json`` and printed in the format of the shipped constants
(``data/offline/baselines.json``)."""

from __future__ import annotations

import datetime
import logging
import statistics
from pathlib import Path
from typing import Any

import yaml

from multidomain.data.benchmark import BENCHMARK_FILE, set_baseline_accuracies
from multidomain.engine.demo import recipe, run_stage, stage_config
from multidomain.engine.eval_run import evaluate_run
from multidomain.engine.pretrained import is_shipped, pretrain_overrides
from multidomain.engine.recipes import resolve_config_path
from multidomain.io import write_json

logger = logging.getLogger(__name__)


def measure_baselines(
    out: Path,
    data_root: Path | None = None,
    pretrained: str | Path | None = None,
    version: int = 1,
    seeds: int = 1,
) -> dict[str, Any]:
    """Fine-tune every parameter per domain from the pretrained source (``pretrained``, else
    the recipe's ``model.init``, else a pretraining here), once per seed, and evaluate on test.

    Returns:
        The shipped-constants entry: build parameters, date, command, the mean accuracies over
        the seeds and their standard deviations.
    """
    finetune_recipe = recipe("finetune", version)
    model = _recipe_model(finetune_recipe)
    init = str(pretrained) if pretrained is not None else model.get("init")
    recipes = [finetune_recipe]
    if init is None:
        init = str(out / "pretrain")
        recipes.insert(0, recipe("pretrain", version))
        overrides = pretrain_overrides(model["source"])
        run_stage(stage_config(recipes[0], data_root, overrides), out / "pretrain")
    reports = [_finetune(out, data_root, finetune_recipe, init, seed) for seed in range(seeds)]
    accuracies = _mean_accuracies(reports)
    root = Path(reports[0]["data_root"])
    set_baseline_accuracies(root / BENCHMARK_FILE, accuracies)
    entry = {
        "data_version": version,
        "image_size": stage_config(
            finetune_recipe, data_root, [f"model.init={init}"]
        ).data.offline_image_size,
        "seed": 0,
        "measured": datetime.date.today().isoformat(),
        "command": f"multidomain baseline --version {version} --seeds {seeds} --out runs/baseline",
        "recipes": recipes,
        "pretrained": init if is_shipped(init) else "pretrained here (recipes[0])",
        "run_seeds": list(range(seeds)),
        "baseline_accuracy": {d: round(a, 2) for d, a in sorted(accuracies.items())},
        "baseline_accuracy_std": _std_accuracies(reports),
    }
    write_json(out / "baselines.json", entry)
    return entry


def _recipe_model(name: str) -> dict[str, Any]:
    """The ``model:`` section of a shipped recipe as written (``model.init`` may be unset)."""
    return yaml.safe_load(resolve_config_path(name).read_text())["model"]


def _finetune(out: Path, data_root: Path | None, name: str, init: str, seed: int) -> dict:
    """One seed's fine-tuning run (``out/finetune`` for seed 0, as before seeds existed)."""
    run_dir = out / ("finetune" if seed == 0 else f"finetune-s{seed}")
    config = stage_config(name, data_root, [f"model.init={init}", f"run.seed={seed}"])
    run_stage(config, run_dir)
    return evaluate_run(run_dir, "test")


def _per_domain(reports: list[dict]) -> dict[str, list[float]]:
    domains = reports[0]["domains"]
    return {d: [r["domains"][d]["accuracy"] for r in reports] for d in domains}


def _mean_accuracies(reports: list[dict]) -> dict[str, float]:
    return {d: statistics.fmean(v) for d, v in _per_domain(reports).items()}


def _std_accuracies(reports: list[dict]) -> dict[str, float] | None:
    """Sample standard deviation per domain over the seeds (None with one seed)."""
    if len(reports) < 2:
        return None
    return {d: round(statistics.stdev(v), 2) for d, v in sorted(_per_domain(reports).items())}
