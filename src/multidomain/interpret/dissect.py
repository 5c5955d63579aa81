"""Network dissection of a multi-domain model (PAPER.md section 8; Bau et al. 2017).

Two passes over the probe set per dissected network: the first streams every unit's values into
an exact top-0.5% threshold, the second upsamples each activation map to the mask size
(bilinear), thresholds it and streams the IoU counts (with bootstrap replicates). Activations
of a batch are consumed inside forward hooks, one layer at a time, and never kept.

Controls (``controls=True``): the same network at random initialisation, and the trained
network with each layer's unit basis rotated by a random orthogonal matrix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from multidomain.errors import ConfigError
from multidomain.interpret.bootstrap import poisson_weights
from multidomain.interpret.counting import IoUCounter, concept_indicators
from multidomain.interpret.layers import (
    LayerRef,
    find_layers,
    random_rotation,
    rotate,
    select_layers,
    spatial_layers,
    watching,
)
from multidomain.interpret.masks import layer_counts
from multidomain.interpret.probe import ProbeBatch, ProbeSet, concept_coverage
from multidomain.interpret.quantile import TopQuantile
from multidomain.models import ModelConfig, MultiDomainNet, build_model

logger = logging.getLogger(__name__)
VARIANTS = ("trained", "random-init", "rotated")


@dataclass(frozen=True)
class DissectOptions:
    """Settings of a dissection (NetDissect's defaults)."""

    quantile: float = 0.005
    iou_threshold: float = 0.04
    batch_size: int = 16
    replicates: int = 20
    seed: int = 0
    top_images: int = 4
    unit_chunk: int = 2048  # most maps upsampled at once (bounds memory)

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1 or not 0 < self.iou_threshold < 1:
            raise ConfigError(
                f"quantile and iou_threshold must lie in (0, 1), got {self.quantile}, "
                f"{self.iou_threshold}"
            )
        if self.batch_size < 1 or self.replicates < 0 or self.top_images < 1:
            raise ConfigError(
                f"batch size and top images must be >= 1 and replicates >= 0, got "
                f"{self.batch_size}, {self.top_images}, {self.replicates}"
            )


@dataclass
class LayerResult:
    """The dissection of one layer.

    Attributes:
        iou: ``(B + 1, K, C)`` IoU per unit and concept; row 0 the probe set, then replicates.
        thresholds: ``(K,)`` activation thresholds.
        top_images: ``(K, t)`` probe indices of each unit's most activating images.
    """

    name: str
    kind: str
    iou: np.ndarray
    thresholds: np.ndarray
    top_images: np.ndarray

    @property
    def units(self) -> int:
        return self.iou.shape[1]


@dataclass
class Dissection:
    """Every dissected variant's layers, with what a report needs to state."""

    probe: str
    concepts: object
    coverage: np.ndarray
    options: DissectOptions
    domain: str
    variants: dict[str, list[LayerResult]] = field(default_factory=dict)


class ImageInput:
    """Probe images (uint8 ``(N, H, W, 3)``) to the model's normalised input ``(N, 3, S, S)``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: int | None = None):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.size = size

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
        if self.size is not None and tuple(x.shape[2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        return (x - self.mean) / self.std


View = Callable[[LayerRef, torch.Tensor], torch.Tensor]


def _identity(_ref: LayerRef, activation: torch.Tensor) -> torch.Tensor:
    return activation.float()


def _forward(model, domain: str, inputs: ImageInput, batch: ProbeBatch) -> None:
    with torch.inference_mode():
        model(inputs(batch.images), domain=domain)


def layer_thresholds(model, domain, probe, refs, inputs, options, view=_identity):
    """``{layer name: (K,) thresholds}``: exact top-quantile of every unit over the probe set."""
    trackers: dict[str, TopQuantile] = {}

    def sink(ref: LayerRef, output: torch.Tensor) -> None:
        a = view(ref, output)  # (N, K, h, w)
        n, k, h, w = a.shape
        if ref.name not in trackers:
            trackers[ref.name] = TopQuantile(k, len(probe) * h * w, options.quantile)
        trackers[ref.name].update(a.transpose(0, 1).reshape(k, n * h * w))

    with watching(refs, sink):
        for batch in probe.batches(options.batch_size):
            _forward(model, domain, inputs, batch)
    return {name: tracker.thresholds() for name, tracker in trackers.items()}


class _Counting:
    """The second pass's state for one layer: IoU counters and most activating images."""

    def __init__(self, units: int, probe: ProbeSet, options: DissectOptions) -> None:
        self.counter = IoUCounter(units, probe.concepts, options.replicates)
        self.top_values = torch.full((units, 0), -float("inf"))
        self.top_images = torch.zeros((units, 0), dtype=torch.int64)
        self.keep = options.top_images

    def add_top(self, peaks: torch.Tensor, indices: torch.Tensor) -> None:
        """Merge ``(N, K)`` per-image peak activations into each unit's best images."""
        values = torch.cat([self.top_values, peaks.T], dim=1)
        images = torch.cat([self.top_images, indices.expand(peaks.shape[1], -1)], dim=1)
        order = torch.argsort(values, dim=1, descending=True, stable=True)[:, : self.keep]
        self.top_values, self.top_images = values.gather(1, order), images.gather(1, order)


def count_layers(model, domain, probe, refs, thresholds, inputs, options, view=_identity):
    """``{layer name: _Counting}`` after the second pass (masks, IoU counts, top images)."""
    states: dict[str, _Counting] = {}
    current: dict[str, torch.Tensor] = {}

    def sink(ref: LayerRef, output: torch.Tensor) -> None:
        a = view(ref, output)  # (N, K, h, w)
        state = states.setdefault(ref.name, _Counting(a.shape[1], probe, options))
        peaks = a.amax(dim=(2, 3))  # (N, K)
        state.add_top(peaks, current["indices"])
        state.counter.count_concepts(current["labels"], current["weights"])
        limit, size = thresholds[ref.name], probe.mask_size
        intersection, area = layer_counts(
            a, peaks, limit, size, current["indicators"], options.unit_chunk
        )
        state.counter.add(intersection, area, current["annotated"], current["weights"])

    with watching(refs, sink):
        for batch in probe.batches(options.batch_size):
            weights = poisson_weights(batch.indices, options.replicates, options.seed)
            labels = torch.from_numpy(batch.labels.astype(np.int64)).flatten(2)  # (N, D, P)
            current.update(
                indices=torch.from_numpy(batch.indices)[None, :],
                labels=labels,
                indicators=concept_indicators(labels, len(probe.concepts)),
                annotated=torch.from_numpy(batch.annotated),
                weights=torch.from_numpy(
                    np.concatenate([np.ones((1, len(batch.indices))), weights])
                ),
            )
            _forward(model, domain, inputs, batch)
    return states


def dissect_model(model, domain, probe, refs, inputs, options, view=_identity):
    """Both passes over one network: a :class:`LayerResult` per layer of ``refs``."""
    model.eval()
    thresholds = layer_thresholds(model, domain, probe, refs, inputs, options, view)
    states = count_layers(model, domain, probe, refs, thresholds, inputs, options, view)
    return [
        LayerResult(
            name=ref.name,
            kind=ref.kind,
            iou=states[ref.name].counter.iou().float().numpy(),
            thresholds=thresholds[ref.name].numpy(),
            top_images=states[ref.name].top_images.numpy(),
        )
        for ref in refs
    ]


def random_init_copy(model: MultiDomainNet, seed: int) -> MultiDomainNet:
    """The same architecture and domains, freshly initialised under ``seed``."""
    config = ModelConfig.from_dict(model.config.to_dict())
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(config)


def rotated_view(refs: list[LayerRef], seed: int) -> View:
    """A view that rotates each layer's units by its own random orthogonal matrix."""
    rotations: dict[str, torch.Tensor] = {}

    def view(ref: LayerRef, activation: torch.Tensor) -> torch.Tensor:
        if ref.name not in rotations:
            index = [r.name for r in refs].index(ref.name)
            rotations[ref.name] = random_rotation(activation.shape[1], seed * 1009 + index)
        return rotate(activation.float(), rotations[ref.name])

    return view


def run_dissection(
    model: MultiDomainNet,
    domain: str,
    probe: ProbeSet,
    inputs: ImageInput,
    layers: list[str] | None = None,
    options: DissectOptions | None = None,
    controls: bool = False,
) -> Dissection:
    """Dissect ``model`` on ``probe`` for ``domain``; with ``controls``, also the random-init
    network and the rotated basis (same layers, same probe)."""
    options = options or DissectOptions()
    result = Dissection(probe.description, probe.concepts, concept_coverage(probe), options, domain)
    example = inputs(probe.batch(np.arange(1)).images)
    refs = spatial_layers(model, domain, select_layers(find_layers(model), layers), example)
    logger.info("dissecting %d layers on %s", len(refs), probe.description)
    result.variants["trained"] = dissect_model(model, domain, probe, refs, inputs, options)
    if controls:
        fresh = random_init_copy(model, options.seed)
        fresh_refs = select_layers(find_layers(fresh), [r.name for r in refs])
        logger.info("control: random initialisation")
        result.variants["random-init"] = dissect_model(
            fresh, domain, probe, fresh_refs, inputs, options
        )
        logger.info("control: rotated unit basis")
        view = rotated_view(refs, options.seed)
        result.variants["rotated"] = dissect_model(
            model, domain, probe, refs, inputs, options, view
        )
    return result
