"""Soft sharing (issue 10): the fast path (the gate mixed into the kernels, one convolution with
groups = N x C) against the official loop over the banks, side by side in one run.

The soft-sharing layer (gate, 10 banks, pointwise) at the four layer shapes of ``resnet26_dw``
with a 64x64 input (64 channels at 64x64, 128 at 32x32, 256 at 16x16, 512 at 8x8), batch 64,
channels_last, 2 threads; eval (no grad) and a training step (forward + backward, banks frozen
as in the soft stage). Each figure is the median of interleaved rounds. ``--network`` adds the
whole soft-sharing network (``resnet26_dw`` width 1, 10 domains, batch 64 of one target domain at
64x64; train = forward + backward of the soft stage's trainable parameters).

    python benchmarks/bench_soft.py [--rounds 5] [--threads 2] [--network] [--no-layers]
        [--forms fast,folded,...] [--cpu-time] [--channels 64,128,256,512]

``--forms`` times other exact forms (``SoftSepConv.path``) beside the fast path: ``folded`` on a
channels_last input is the fast path before the channels_last fold.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from multidomain import create_model
from multidomain.layers import Route, routing
from multidomain.layers.per_domain import PerDomain, depthwise_conv, pointwise_conv
from multidomain.layers.soft_mixing import MIXERS
from multidomain.layers.soft_sharing import SoftGates, SoftSepConv
from multidomain.models.roles import named_parameter_info

BANKS = [f"domain{i}" for i in range(10)]
SHAPES = [(64, 64), (128, 32), (256, 16), (512, 8)]  # (channels, spatial size) at a 64 px input


def soft_layer(channels: int) -> SoftSepConv:
    banks = PerDomain({d: depthwise_conv(channels, 1) for d in BANKS})
    layer = SoftSepConv(
        banks, pointwise_conv(channels, channels), SoftGates(channels, BANKS, BANKS[0])
    )
    for name, param in layer.named_parameters():
        param.requires_grad_(".gate." in f".{name}" or "conv_pw" in name)  # banks frozen
    return layer.to(memory_format=torch.channels_last)


def layer_step(layer: SoftSepConv, x: torch.Tensor, train: bool) -> Callable[[], None]:
    route = Route.for_domain(BANKS[1], x.shape[0])  # a gated target domain

    with routing(route), torch.no_grad():
        grad = torch.randn_like(layer(x))  # a fixed upstream gradient: the layer's cost alone

    def step() -> None:
        with routing(route), torch.set_grad_enabled(train):
            out = layer(x.requires_grad_(train))
            if train:
                out.backward(grad)

    return step


def network_step(model, x, target, train: bool) -> Callable[[], None]:
    model.train(train)

    def step() -> None:
        with torch.set_grad_enabled(train):
            loss = F.cross_entropy(model(x, BANKS[1]), target)
            if train:
                loss.backward()

    return step


def freeze_as_the_soft_stage(model) -> None:
    """Train what the soft stage trains (PAPER.md section 3): gates, norms, the domains' own
    last pointwise and heads; every bank and every shared pointwise frozen."""
    for _, param, info in named_parameter_info(model):
        owned_pointwise = info.role == "pointwise" and info.domain is not None
        param.requires_grad_(info.role in ("gate", "norm", "head") or owned_pointwise)


def median_times(
    steps: dict[str, Callable[[], None]], rounds: int, clock: Callable[[], float]
) -> dict[str, float]:
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):  # interleaved, so load changes hit every variant alike
        for name, step in steps.items():
            start = clock()
            step()
            times[name].append(clock() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def compare(label: str, module, make_step, args: argparse.Namespace) -> list[float]:
    """Each of ``args.forms`` against the loop, interleaved; the speed-ups of the first."""
    forms, clock = args.forms, time.process_time if args.cpu_time else time.perf_counter
    ratios = []
    for train in (False, True):
        paths = ["loop", *forms]
        steps = {path: _with_path(module, path, make_step(train)) for path in paths}
        t = median_times(steps, args.rounds, clock)
        ratios.append(t["loop"] / t[forms[0]])
        mode = "train" if train else "eval"
        figures = "".join(
            f"  {path} {t[path] * 1e3:8.1f} ms ({t['loop'] / t[path]:5.2f}x)" for path in forms
        )
        print(f"{label:<22} {mode:<5} loop {t['loop'] * 1e3:8.1f} ms{figures}", flush=True)
    return ratios


def _with_path(module, path: str, step: Callable[[], None]) -> Callable[[], None]:
    layers = [m for m in module.modules() if isinstance(m, SoftSepConv)]

    def run() -> None:
        for layer in layers:
            layer.path = path
        step()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--channels",
        default=",".join(str(c) for c, _ in SHAPES),
        help="comma-separated layer shapes to time, by channels (default: all four)",
    )
    parser.add_argument("--network", action="store_true", help="also the whole network")
    parser.add_argument("--no-layers", action="store_true", help="skip the single layers")
    parser.add_argument(
        "--forms",
        default="fast",
        help="comma-separated SoftSepConv.path values to time against the loop (the first one "
        f"gives the summary): {', '.join(sorted(set(MIXERS) - {'loop'}))}",
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the process's CPU time, not the wall clock: steadier on a loaded machine "
        "with --threads 1 (with more threads it adds up every thread, waits included)",
    )
    args = parser.parse_args()
    args.forms = args.forms.split(",")
    choices = sorted(set(MIXERS) - {"loop"})  # the loop is always timed, as the reference
    unknown = sorted(set(args.forms) - set(choices))
    if unknown:
        parser.error(f"unknown --forms {unknown}; choose from {choices}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clock = "CPU time" if args.cpu_time else "wall clock"
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, 10 banks, {clock}"
    )
    if not args.no_layers:
        compare_layers(args)
    if args.network:
        compare_network(args)


def compare_layers(args: argparse.Namespace) -> None:
    ratios = []
    chosen = {int(c) for c in args.channels.split(",")}
    for channels, size in [(c, size) for c, size in SHAPES if c in chosen]:
        layer = soft_layer(channels)
        x = torch.randn(args.batch, channels, size, size).contiguous(
            memory_format=torch.channels_last
        )
        label = f"layer {channels}ch {size}x{size}"
        ratios += compare(
            label,
            layer,
            lambda train, soft=layer, x=x: layer_step(soft, x, train),
            args,
        )
    print(
        f"layers ({args.forms[0]}): median speed-up {statistics.median(ratios):.2f}x, "
        f"lowest {min(ratios):.2f}x"
    )


def compare_network(args: argparse.Namespace) -> None:
    model = create_model("resnet26_dw", dict.fromkeys(BANKS, 10), "soft")
    freeze_as_the_soft_stage(model)
    x = torch.randn(args.batch, 3, 64, 64)
    target = torch.randint(0, 10, (args.batch,))

    def make_step(train: bool) -> Callable[[], None]:
        return network_step(model, x, target, train)

    compare("network", model, make_step, args)


if __name__ == "__main__":
    main()
