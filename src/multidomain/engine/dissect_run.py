"""Dissect a finished run's model for one domain (``multidomain dissect``)."""

from __future__ import annotations

from pathlib import Path

from multidomain.data.benchmark import load_benchmark
from multidomain.engine.eval_run import load_run_model, run_data_root
from multidomain.errors import ConfigError
from multidomain.interpret.broden import BrodenProbe
from multidomain.interpret.dissect import DissectOptions, ImageInput, run_dissection
from multidomain.interpret.offline_probe import OfflineProbe
from multidomain.interpret.report import write_report
from multidomain.locks import folder_lock


def make_probe(spec: str, images: int, image_size: int, seed: int):
    """``offline`` (built here) or a Broden folder."""
    if spec == "offline":
        return OfflineProbe(images, image_size, seed)
    if not Path(spec).is_dir():
        raise ConfigError(f"--probe {spec!r} is neither 'offline' nor a Broden folder")
    return BrodenProbe(spec, limit=images)


def dissect_run(
    run_dir: Path,
    domain: str,
    probe_spec: str,
    out: Path,
    layers: list[str] | None = None,
    controls: bool = False,
    data_root: Path | None = None,
    images: int = 2000,
    image_size: int = 72,
    options: DissectOptions | None = None,
) -> list[Path]:
    """Dissect ``RUN/model`` for ``domain`` on the probe; the report goes into ``out``."""
    model = load_run_model(run_dir)
    if domain not in model.domains:
        raise ConfigError(f"the model has no domain {domain!r}; its domains: {list(model.domains)}")
    info = load_benchmark(run_data_root(run_dir, data_root)).domain(domain)
    options = options or DissectOptions()
    probe = make_probe(probe_spec, images, image_size, options.seed)
    inputs = ImageInput(info.mean, info.std, image_size)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "output folder"):
        result = run_dissection(model, domain, probe, inputs, layers, options, controls)
        return write_report(result, out, model, probe, inputs)
