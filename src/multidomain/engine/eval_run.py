"""Evaluate a finished run: per-domain top-1, mean, Decathlon score, parameter accounting;
``eval.json`` in the run folder and, for the test split, the challenge ``results.json``."""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from multidomain.data.benchmark import Benchmark, load_benchmark
from multidomain.data.submission import submission_entries, write_submission
from multidomain.engine import data_setup
from multidomain.engine.batches import DomainBatches, eval_plan
from multidomain.engine.bn_guard import reestimate_bn
from multidomain.engine.config import DataConfig, load_config
from multidomain.engine.distributed import DistInfo, resolve_device
from multidomain.engine.evaluate import DomainResult, evaluate
from multidomain.engine.run_dir import CONFIG_FILE
from multidomain.errors import StorageError
from multidomain.interpret.gates import GateRecorder, write_gate_maps
from multidomain.io import write_json
from multidomain.locks import folder_lock
from multidomain.metrics.decathlon_score import domain_points
from multidomain.metrics.params import count_parameters, independent_parameters
from multidomain.models import MultiDomainNet
from multidomain.models.packs import load_model

logger = logging.getLogger(__name__)


def load_run_model(run_dir: Path) -> MultiDomainNet:
    model_dir = Path(run_dir) / "model"
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} holds no finished model (no model/config.json): finish the run with "
            f"`multidomain train --out {run_dir} --resume`"
        )
    try:
        return load_model(model_dir)
    except StorageError as err:
        raise StorageError(
            f"{err}; or publish it again from the run's last checkpoint with "
            f"`multidomain train --out {run_dir} --resume`"
        ) from err


def run_data_root(run_dir: Path, data_root: str | Path | None) -> Path:
    """``--data`` if given, else the run config's data root."""
    if data_root is not None:
        return data_setup.resolve_root(DataConfig(root=str(data_root)))
    return data_setup.resolve_root(load_config(Path(run_dir) / CONFIG_FILE).data)


def select_domains(model: MultiDomainNet, benchmark: Benchmark, requested: list[str] | None):
    """The model's domains that the data holds (or the requested ones, checked)."""
    if requested:
        for domain in requested:
            if domain not in model.domains:
                raise ValueError(
                    f"the model has no domain {domain!r}; its domains: {list(model.domains)}"
                )
            benchmark.domain(domain)
        return list(requested)
    domains = [d for d in model.domains if d in benchmark.domains]
    if not domains:
        raise ValueError(
            f"the data ({benchmark.name}) holds none of the model's domains {list(model.domains)}"
        )
    return domains


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    data_root: str | Path | None = None,
    domains: list[str] | None = None,
    bn_reestimate: bool = False,
    workers: int = 0,
    out: str | Path | None = None,
    kept_images: dict | None = None,
) -> dict[str, Any]:
    """Evaluate ``RUN_DIR/model`` on ``split``; writes ``eval.json`` (and ``results.json``)
    into ``out`` (default: the run folder), which is locked while the command runs.

    ``kept_images``: a dict shared by several evaluations on the same data, which then decode
    each image once (``data_setup.split_samples``'s ``kept``)."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir
    with _output_lock(out, run_dir):
        return _evaluate(
            run_dir, split, data_root, domains, bn_reestimate, workers, out, kept_images
        )


@contextlib.contextmanager
def _output_lock(out: Path, run_dir: Path) -> Iterator[None]:
    """Hold the lock of the folder eval writes to; one that cannot be written is refused now,
    before the evaluation, with the way around it."""
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(folder_lock(out, "run folder" if out == run_dir else "output folder"))
    except OSError as err:
        if isinstance(err, StorageError) or err.errno not in _READ_ONLY:
            raise
        raise StorageError(
            f"cannot write to {out} ({err.strerror}): give --out DIR to write eval.json and "
            "results.json elsewhere"
        ) from err
    with stack:
        yield


_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _evaluate(
    run_dir, split, data_root, domains, bn_reestimate, workers, out, kept_images=None
) -> dict[str, Any]:
    model = load_run_model(run_dir)
    root = run_data_root(run_dir, data_root)
    benchmark = load_benchmark(root)
    domains = select_domains(model, benchmark, domains)
    device = resolve_device("auto", DistInfo())
    model.to(device)
    samples = data_setup.split_samples(root, domains, split, benchmark, kept=kept_images)
    batches = DomainBatches(samples, workers, device.type == "cuda")
    if bn_reestimate:
        _reestimate(model, root, domains, benchmark, device, workers)
    with GateRecorder(model) as gates:  # soft sharing: what the gates weigh, on these images
        results = evaluate(model, batches, eval_plan(samples, 128), device)
    report = build_report(model, benchmark, results, split, root)
    if gates.means():
        report["gates"] = gates.means()
        report["gate_maps"] = write_gate_maps(report["gates"], out)
    write_json(out / "eval.json", report)
    if split == "test":
        entries = []
        for domain, dataset in zip(samples.domains, samples.datasets, strict=True):
            entries += submission_entries(dataset, results[domain].predictions)
        write_submission(out / "results.json", entries)
    return report


def _reestimate(model, root, domains, benchmark, device, workers) -> None:
    train = data_setup.split_samples(root, domains, "train", benchmark)
    batches = DomainBatches(train, workers, device.type == "cuda")
    for domain in domains:
        plan = eval_plan(train, 64, domain=domain)
        used = reestimate_bn(model, domain, batches, plan, device)
        logger.info("re-estimated BN statistics of %s on %d training images", domain, used)


def build_report(
    model: MultiDomainNet,
    benchmark: Benchmark,
    results: dict[str, DomainResult],
    split: str,
    root: Path,
) -> dict[str, Any]:
    """The content of ``eval.json``."""
    params = count_parameters(model)
    baselines = {d: benchmark.domain(d).baseline_accuracy for d in results}
    per_domain = {}
    for domain, result in results.items():
        labelled = result.count > 0
        baseline = baselines[domain]
        per_domain[domain] = {
            "accuracy": result.accuracy if labelled else None,
            "images": len(result.predictions),
            "own_parameters": params.per_domain[domain],
            "head_parameters": params.heads[domain],
            "baseline_accuracy": baseline,
            "points": domain_points(result.accuracy, baseline)
            if labelled and baseline is not None
            else None,
        }
    accuracies = [v["accuracy"] for v in per_domain.values() if v["accuracy"] is not None]
    note = _score_note(per_domain, benchmark)
    independent = independent_parameters(model)
    return {
        "split": split,
        "data_root": str(root),
        "benchmark": benchmark.name,
        "domains": per_domain,
        "mean_accuracy": sum(accuracies) / len(accuracies) if accuracies else None,
        "score": sum(v["points"] for v in per_domain.values()) if note is None else None,
        "score_note": note,
        "parameters": params.to_dict(),
        "independent_parameters": independent,
        "ratio_to_independent": params.total / independent,
    }


def _score_note(per_domain: dict[str, dict], benchmark: Benchmark) -> str | None:
    """Why the report has no Decathlon score, or None when it has one.

    The score sums the points of every domain of the benchmark (PAPER.md section 6): the sum
    over a subset is no Decathlon score, so a partial evaluation names the domains it lacks.
    """
    unevaluated = [d for d in benchmark.domains if d not in per_domain]
    no_baseline = [d for d, v in per_domain.items() if v["baseline_accuracy"] is None]
    unlabelled = [d for d, v in per_domain.items() if v["accuracy"] is None]
    reasons = []
    if unevaluated:
        reasons.append(
            f"{', '.join(unevaluated)} not evaluated (evaluate a model that has every domain "
            "of the benchmark, without --domains)"
        )
    if no_baseline:
        reasons.append(f"no baseline accuracy for {', '.join(no_baseline)}")
    if unlabelled:
        reasons.append(
            f"no labels for {', '.join(unlabelled)} in this split (submit results.json to the "
            "challenge server)"
        )
    if not reasons:
        return None
    return f"it needs points for every domain of {benchmark.name}: " + "; ".join(reasons)
