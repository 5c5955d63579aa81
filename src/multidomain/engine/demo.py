"""The main job: the paper's pipeline end to end on the offline mini-decathlon.

Prepare the data, pretrain ``resnet26_dw`` on the source domain, adapt every other domain the
paper's way (shared pointwise frozen), evaluate on test, and report accuracy, parameters and
the Decathlon score. Each stage is a run folder; re-running the demo resumes or skips finished
stages.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from multidomain.engine.config import TrainConfig, load_config
from multidomain.engine.eval_run import evaluate_run
from multidomain.engine.pretrained import SHIPPED_PREFIX, has_shipped, is_shipped, shipped_name
from multidomain.engine.recipes import resolve_config_path
from multidomain.engine.report import format_eval_table, write_report
from multidomain.engine.run_dir import CONFIG_FILE, resolve_run_config
from multidomain.engine.train import run_training

logger = logging.getLogger(__name__)

# --quick: a tiny network and one epoch per stage, for tests and CI (well under 2 minutes).
QUICK = ["model.width=0.125", "optim.epochs=1", "optim.lr_milestones=[]"]
# The recipe folder of each mini-decathlon version (README, "Data").
RECIPE_FOLDERS = {1: "mini", 2: "mini2"}


def recipe(name: str, version: int) -> str:
    """The shipped recipe ``name`` (pretrain, adapt, finetune) of mini-decathlon ``version``."""
    from multidomain.data.offline import check_version

    return f"{RECIPE_FOLDERS[check_version(version)]}/{name}"


def stage_config(recipe: str, data_root: Path | None, extra: list[str]) -> TrainConfig:
    overrides = list(extra)
    if data_root is not None:
        overrides.append(f"data.root={data_root}")
    return load_config(resolve_config_path(recipe), overrides)


def run_stage(config: TrainConfig, run_dir: Path) -> Path:
    """Train, resume an interrupted stage, or reuse a finished one (made with this config)."""
    resume = (run_dir / CONFIG_FILE).is_file()
    resolve_run_config(run_dir, config, resume)  # a stage made with other settings is refused
    if (run_dir / "model" / "config.json").is_file():
        logger.info("%s is finished: reusing it", run_dir)
        return run_dir / "model"
    return run_training(config, run_dir, resume=resume)


def run_demo(
    out: Path,
    quick: bool = False,
    data_root: Path | None = None,
    version: int = 1,
    pretrain: bool = False,
) -> dict[str, Any]:
    """Run the whole pipeline into ``out`` on mini-decathlon ``version``; returns the test
    evaluation (``eval.json``).

    Where the package ships the source's pretrained weights (version 2), the adaptation starts
    from them unless ``pretrain`` (or ``quick``, whose tiny network has no shipped weights)."""
    start = time.perf_counter()
    extra = QUICK if quick else []
    source_init = _source_init(out, data_root, version, extra, pretrain or quick)
    adapt = stage_config(recipe("adapt", version), data_root, [*extra, f"model.init={source_init}"])
    logger.info("stage 2/3: adapting %s", ", ".join(adapt.data.domains))
    run_stage(adapt, out / "adapt")
    logger.info("stage 3/3: evaluating on the test split")
    report = evaluate_run(out / "adapt", "test")
    minutes = (time.perf_counter() - start) / 60
    flags = f"{' --quick' if quick else ''}{' --pretrain' if pretrain else ''}"
    note = (
        f"Pipeline: `multidomain demo --version {version}{flags}` in {minutes:.1f} min "
        f"(pretrained: {source_init}, adapt: {out / 'adapt'}). The challenge submission "
        f"file is {out / 'adapt' / 'results.json'}."
    )
    stages = {"adapt": out / "adapt"}
    if not is_shipped(source_init):
        stages = {"pretrain": out / "pretrain", **stages}
    write_report(out, report, stages, note)
    print(format_eval_table(report))
    print(f"\nreport: {out / 'report.md'} ({minutes:.1f} min)")
    return report


def _source_init(
    out: Path, data_root: Path | None, version: int, extra: list[str], pretrain: bool
) -> str:
    """``model.init`` of the adaptation: the shipped source weights, or a pretraining here."""
    source = stage_config(recipe("pretrain", version), data_root, extra)
    if not pretrain and has_shipped(version, source.model.source):
        name = SHIPPED_PREFIX + shipped_name(version, source.model.source)
        logger.info("stage 1/3: starting from the shipped pretrained weights %s", name)
        return name
    logger.info("stage 1/3: pretraining on %s", ", ".join(source.data.domains))
    run_stage(source, out / "pretrain")
    return str(out / "pretrain")
