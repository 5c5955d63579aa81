"""Time and peak memory of network dissection (issue 14).

resnet26_dw (width 1, freshly initialised) on N offline probe images at 72 px, every depthwise
and pointwise output, 20 bootstrap replicates:

1. the former path (``dissect_before.py``) and the current one side by side in one process on
   the same images, both passes (thresholds, then masks and counts), and whether they agree;
2. the current ``run_dissection`` without and with ``--controls``, each in its own process so
   that its peak resident memory is its own, with the time per image and the extrapolation to
   2,000 images (a small N overstates the per-image cost: its top-0.5% thresholds are lower,
   so more maps pass them).

    nice python benchmarks/bench_dissect.py --images 2000 --compare-images 64
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))


def _setup(images: int, size: int, threads: int):
    from multidomain.interpret.dissect import ImageInput
    from multidomain.interpret.offline_probe import OfflineProbe
    from multidomain.models import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model("resnet26_dw", {"probe": 10}, width=1.0).eval()
    probe = OfflineProbe(images, size, seed=0)
    list(probe.batches(16))  # render (and cache) the probe outside the timings
    return model, probe, ImageInput([0.5] * 3, [0.25] * 3)


def measure(images: int, size: int, controls: bool, threads: int) -> dict:
    from multidomain.interpret.dissect import DissectOptions, run_dissection

    model, probe, inputs = _setup(images, size, threads)
    start, cpu = time.perf_counter(), time.process_time()
    run_dissection(model, "probe", probe, inputs, None, DissectOptions(), controls)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"images": images, "controls": controls, "seconds": seconds, "cpu": cpu,
            "peak_gb": peak_gb}  # fmt: skip


def compare(images: int, size: int, threads: int) -> None:
    """The former and the current passes on the same images, timed one after the other."""
    from dissect_before import count_layers_before, layer_thresholds_before
    from multidomain.interpret.dissect import DissectOptions, count_layers, layer_thresholds
    from multidomain.interpret.layers import find_layers

    model, probe, inputs = _setup(images, size, threads)
    refs, options = find_layers(model), DissectOptions()
    args = (model, "probe", probe, refs)
    times, results = {}, {}
    for name, thresholds_of, count in (
        ("before", layer_thresholds_before, count_layers_before),
        ("now", layer_thresholds, count_layers),
    ):
        start, cpu = time.perf_counter(), time.process_time()
        thresholds = thresholds_of(*args, inputs, options)
        middle = time.perf_counter()
        states = count(*args, thresholds, inputs, options)
        end = time.perf_counter()
        times[name] = (middle - start, end - middle, time.process_time() - cpu)
        results[name] = (thresholds, states)
    same_limits = all(
        torch.equal(results["before"][0][r.name], results["now"][0][r.name]) for r in refs
    )
    differing = sum(
        int((results["before"][1][r.name].counter.intersection[0]
             != results["now"][1][r.name].counter.intersection[0]).sum())
        for r in refs
    )  # fmt: skip
    total = sum(results["now"][1][r.name].counter.intersection[0].numel() for r in refs)
    print(f"side by side, {images} images, {threads} threads (thresholds + counting):")
    for name, (first, second, cpu) in times.items():
        per_image = (first + second) / images
        print(
            f"  {name:6s}: {first:6.1f} s + {second:6.1f} s = {first + second:6.1f} s wall "
            f"({cpu:.1f} s CPU), {per_image * 1000:.0f} ms an image, "
            f"{per_image * 2000 / 60:.1f} min for 2,000"
        )
    wall = sum(times["before"][:2]) / sum(times["now"][:2])
    cpu = times["before"][2] / times["now"][2]
    print(f"  before / now: {wall:.2f}x wall, {cpu:.2f}x CPU; thresholds identical: {same_limits}; "
          f"unit-concept intersections differing: {differing} of {total}")  # fmt: skip


def _child(args, one: str) -> dict:
    command = [sys.executable, __file__, "--images", str(args.images), "--size", str(args.size)]
    command += ["--threads", str(args.threads), "--one", one]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--compare-images", type=int, default=64, help="0: no side by side")
    parser.add_argument("--size", type=int, default=72)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", choices=("plain", "controls"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.images, args.size, args.one == "controls", args.threads)))
        return
    if args.compare_images:
        compare(args.compare_images, args.size, args.threads)
    rows = [_child(args, one) for one in ("plain", "controls")]
    for row in rows:
        per_image = row["seconds"] / row["images"]
        print(
            f"{'with' if row['controls'] else 'without'} controls: {row['images']} images, "
            f"{row['seconds']:.1f} s wall ({per_image * 1000:.0f} ms an image, "
            f"{per_image * 2000 / 60:.1f} min for 2,000 at this rate), {row['cpu']:.1f} s CPU "
            f"({row['cpu'] / row['images'] * 2000 / 60:.1f} CPU-min for 2,000), "
            f"peak {row['peak_gb']:.2f} GB"
        )
    print(f"controls / plain time: {rows[1]['seconds'] / rows[0]['seconds']:.2f}x")
    print("(under load, CPU seconds / threads approximate the wall time on an idle machine)")


if __name__ == "__main__":
    main()
