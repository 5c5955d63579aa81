"""Time and peak memory of network dissection (issue 14).

resnet26_dw (width 1) on N offline probe images at 72 px, with and without --controls; each
configuration runs in its own process so that its peak resident memory is its own. The
network is freshly initialised (the cost does not depend on the weights' values beyond how
many maps pass their threshold; a trained network's figure may differ somewhat).

    nice python benchmarks/bench_dissect.py --images 2000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(images: int, size: int, controls: bool, threads: int) -> dict:
    import torch

    from multidomain.interpret.dissect import DissectOptions, ImageInput, run_dissection
    from multidomain.interpret.offline_probe import OfflineProbe
    from multidomain.models import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model("resnet26_dw", {"probe": 10}, width=1.0)
    probe = OfflineProbe(images, size, seed=0)
    start = time.perf_counter()
    run_dissection(
        model, "probe", probe, ImageInput([0.5] * 3, [0.25] * 3), None, DissectOptions(), controls
    )
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"images": images, "controls": controls, "seconds": seconds, "peak_gb": peak_gb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=72)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", choices=("plain", "controls"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.images, args.size, args.one == "controls", args.threads)))
        return
    rows = []
    for one in ("plain", "controls"):
        command = [
            sys.executable,
            __file__,
            "--images",
            str(args.images),
            "--size",
            str(args.size),
            "--threads",
            str(args.threads),
            "--one",
            one,
        ]
        rows.append(
            json.loads(
                subprocess.run(command, check=True, capture_output=True, text=True)
                .stdout.strip()
                .splitlines()[-1]
            )
        )
    for row in rows:
        per_image = row["seconds"] / row["images"]
        print(
            f"{'with' if row['controls'] else 'without'} controls: {row['images']} images, "
            f"{row['seconds']:.1f} s ({per_image * 1000:.0f} ms an image, "
            f"{per_image * 2000 / 60:.1f} min for 2,000 at this rate), peak {row['peak_gb']:.2f} GB"
        )
    print(f"controls / plain time: {rows[1]['seconds'] / rows[0]['seconds']:.2f}x")


if __name__ == "__main__":
    main()
