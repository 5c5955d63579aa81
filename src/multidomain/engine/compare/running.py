"""Running the plan (issue 10): each stage trains, resumes or is reused (``demo.run_stage``), so
an interrupted compare continues where it stopped and never retrains a finished run. A progress
line per stage names it, its place in the plan and the ETA from the durations measured so far,
and one more says how long it took."""

from __future__ import annotations

import time
from collections.abc import Callable

from multidomain.engine.compare.plan import Stage
from multidomain.engine.demo import run_stage


def is_finished(stage: Stage) -> bool:
    return (stage.folder / "model" / "config.json").is_file()


def eta_text(durations: list[float], left: int) -> str:
    """The ETA of ``left`` stages still to train at the mean of the measured ``durations``."""
    if not durations:
        return "ETA unknown until a run has finished"
    seconds = sum(durations) / len(durations) * left
    return f"ETA {seconds / 60:.1f} min"


def run_plan(stages: list[Stage], say: Callable[[str], None] = print) -> list[float]:
    """Train every stage not yet finished; returns the durations (seconds) of those it trained."""
    durations: list[float] = []
    for index, stage in enumerate(stages, 1):
        head = f"run {index}/{len(stages)}: {stage.label}"
        if is_finished(stage):
            say(f"{head}: finished, reused ({stage.folder})")
            run_stage(stage.config, stage.folder)  # refuses one made with other settings
            continue
        left = sum(not is_finished(s) for s in stages[index - 1 :])
        say(f"{head} ... {eta_text(durations, left)}")
        start = time.perf_counter()
        run_stage(stage.config, stage.folder)
        durations.append(time.perf_counter() - start)
        say(f"{head}: trained in {durations[-1] / 60:.1f} min")
    return durations
