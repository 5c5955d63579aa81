"""``multidomain compare`` (issue 10): train and evaluate the rows of the paper's table
(``engine.rows``) over seeds on one data tree, and report them side by side.

- ``plan``: rows x seeds -> stages (pretraining once per backbone, method and seed);
- ``sources``: where each backbone's source weights come from (one function);
- ``running``: train, resume or reuse each stage, with a progress line and an ETA;
- ``results``, ``stats``: test accuracy, score, #par; mean and spread over seeds;
- ``questions``, ``report``, ``tables``, ``plots``, ``published``: compare.md/csv/json and plots.
"""

from __future__ import annotations

import logging
import time

from multidomain.engine.compare.plan import Settings, build_plan
from multidomain.engine.compare.report import write_outputs
from multidomain.engine.compare.results import Results, collect
from multidomain.engine.compare.running import run_plan
from multidomain.engine.rows import select_rows
from multidomain.errors import ConfigError
from multidomain.locks import folder_lock

logger = logging.getLogger(__name__)


def run_compare(methods: str, seeds: int, settings: Settings) -> Results:
    """Train (or reuse) every stage of ``methods`` x ``seeds``, evaluate, write the report."""
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: give at least 1 (3 to tell differences from noise)")
    rows = select_rows(methods)
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "compare folder"):
        stages = build_plan(rows, seeds, settings)  # every config checked before training
        start = time.perf_counter()
        run_plan(stages)
        results = collect(stages)
        minutes = (time.perf_counter() - start) / 60
        header = [
            f"- command: `multidomain compare --version {settings.version} --methods {methods} "
            f"--seeds {seeds}{' --quick' if settings.quick else ''}` ({minutes:.1f} min in this "
            "invocation; finished runs are reused)",
            f"- runs: {out / 'runs'} (rows), {out / 'pretrain'} (source pretraining)",
        ]
        if settings.quick:
            header.append("- --quick: width 0.125, one epoch a stage: a smoke run, not a result")
        path = write_outputs(results, out, header)
    print(f"compare: {path} ({minutes:.1f} min)")
    return results
