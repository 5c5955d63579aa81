"""Measure the mini-decathlon's score baselines the way the Decathlon did (PAPER.md section 6):
the pretrained network with every parameter fine-tuned per domain (recipe ``mini/finetune``),
evaluated on test. The result is written into the data root's ``benchmark.json`` and printed
in the format of the shipped constants (``data/offline/baselines.json``)."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

from multidomain.data.benchmark import BENCHMARK_FILE, set_baseline_accuracies
from multidomain.engine.demo import recipe, run_stage, stage_config
from multidomain.engine.eval_run import evaluate_run
from multidomain.io import write_json

logger = logging.getLogger(__name__)


def measure_baselines(
    out: Path, data_root: Path | None = None, pretrained: Path | None = None, version: int = 1
) -> dict[str, Any]:
    """Pretrain (or reuse ``pretrained``), fine-tune every parameter per domain, evaluate.

    Returns:
        The shipped-constants entry: build parameters, date, command and accuracies.
    """
    if pretrained is None:
        pretrained = out / "pretrain"
        run_stage(stage_config(recipe("pretrain", version), data_root, []), pretrained)
    init = f"model.init={pretrained}"
    finetune = stage_config(recipe("finetune", version), data_root, [init])
    run_stage(finetune, out / "finetune")
    report = evaluate_run(out / "finetune", "test")
    accuracies = {domain: entry["accuracy"] for domain, entry in report["domains"].items()}
    root = Path(report["data_root"])
    set_baseline_accuracies(root / BENCHMARK_FILE, accuracies)
    entry = {
        "data_version": finetune.data.offline_version,
        "image_size": finetune.data.offline_image_size,
        "seed": 0,
        "measured": datetime.date.today().isoformat(),
        "command": f"multidomain baseline --version {version} --out runs/baseline",
        "recipes": [recipe("pretrain", version), recipe("finetune", version)],
        "baseline_accuracy": {d: round(a, 2) for d, a in sorted(accuracies.items())},
    }
    write_json(out / "baselines.json", entry)
    return entry
