"""Predicting classes of image files, each for its own domain, with the domain's own
preprocessing (its card: crop policy, mean/std, test crop, PAPER.md section 4).

Images of many domains go through the trunk together: a batch is a run of consecutive requests,
whatever their domains, and the model routes each image to its domain's layers
(``layers.per_domain``: one pass through the shared layers). Results come back in input order.
An image that cannot be read is reported by name and the others are still predicted.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from multidomain.data.images import load_rgb
from multidomain.data.transforms import build_transform
from multidomain.errors import ConfigError, DataError, InputNotFound
from multidomain.models import MultiDomainNet

logger = logging.getLogger(__name__)
# How to give a domain saved before cards existed its class names and preprocessing.
SET_CARD = (
    "set them with `multidomain domains card --model MODEL {domain} --data ROOT` (ROOT: the "
    "devkit tree the domain was trained on)"
)


@dataclass(frozen=True)
class Request:
    """One image to classify as an image of ``domain``."""

    image: Path
    domain: str


@dataclass
class Prediction:
    """The ``topk`` classes of an image (name, probability), or why it has none."""

    image: str
    domain: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        top = [{"class": name, "probability": p} for name, p in self.top]
        return {"image": self.image, "domain": self.domain, "top": top, "error": self.error}


def read_list(path: str | Path) -> list[Request]:
    """Rows ``image,domain`` of a CSV file (an optional header ``image,domain``); relative image
    paths are relative to the CSV file's folder, so a list travels with its images."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"--list {path} not found: give a CSV file of rows image,domain")
    requests = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or (line == 1 and [c.strip() for c in row] == ["image", "domain"]):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise DataError(f"{path}, line {line}: expected 'image,domain', got {row!r}")
            image = Path(row[0].strip())
            requests.append(
                Request(image if image.is_absolute() else path.parent / image, row[1].strip())
            )
    if not requests:
        raise DataError(f"{path} lists no images: write one 'image,domain' row per image")
    return requests


def domain_transforms(model: MultiDomainNet, domains: Iterable[str]) -> dict[str, Callable]:
    """The evaluation transform of each domain, from its card.

    Raises:
        ConfigError: for a domain the model does not have (listing its domains), or one whose
            preprocessing was never saved (a model written before cards existed).
    """
    transforms = {}
    for domain in dict.fromkeys(domains):
        if domain not in model.domains:
            raise ConfigError(
                f"the model has no domain {domain!r}; its domains: {list(model.domains)}"
            )
        preprocess = model.card(domain).preprocess
        if preprocess is None:
            raise ConfigError(
                f"domain {domain!r} has no saved preprocessing (its pack was written before "
                f"multidomain saved it): {SET_CARD.format(domain=domain)}"
            )
        transforms[domain] = build_transform(
            preprocess.crop,
            False,
            preprocess.mean,
            preprocess.std,
            preprocess.image_size,
            preprocess.crop_size,
        )
    return transforms


def batches(requests: Sequence[Request], batch_size: int, mixed: bool) -> list[list[int]]:
    """Indices of ``requests`` per batch: consecutive runs (``mixed``), or runs within each
    domain (grouped: every batch holds one domain)."""
    if mixed:
        groups = [list(range(len(requests)))]
    else:
        by_domain: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            by_domain.setdefault(request.domain, []).append(i)
        groups = list(by_domain.values())
    return [g[i : i + batch_size] for g in groups for i in range(0, len(g), batch_size)]


@torch.no_grad()
def predict(
    model: MultiDomainNet,
    requests: Sequence[Request],
    topk: int = 5,
    batch_size: int = 64,
    mixed: bool = True,
    device: torch.device | str = "cpu",
) -> list[Prediction]:
    """Predict every request (see the module docstring); results in input order."""
    transforms = domain_transforms(model, (r.domain for r in requests))
    model.eval()
    results = [Prediction(str(r.image), r.domain) for r in requests]
    for indices in batches(requests, batch_size, mixed):
        images = {}
        for i in indices:
            try:
                images[i] = transforms[requests[i].domain](load_rgb(requests[i].image))
            except (OSError, DataError) as err:  # missing, unreadable, not an image
                results[i].error = str(err)
                logger.warning("%s: %s", requests[i].image, err)
        _run(model, requests, images, results, topk, torch.device(device))
    return results


def _run(model, requests, images: dict[int, torch.Tensor], results, topk: int, device) -> None:
    """Classify the decoded images of one batch (sub-batches of equal image size)."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in images.items():
        by_shape.setdefault(tuple(image.shape), []).append(i)
    for indices in by_shape.values():
        x = torch.stack([images[i] for i in indices]).to(device)
        domains = [requests[i].domain for i in indices]
        logits = model(x, domains if len(set(domains)) > 1 else domains[0]).float().cpu()
        for row, i in zip(logits, indices, strict=True):
            results[i].top = _top(model, requests[i].domain, row, topk)


def _top(model: MultiDomainNet, domain: str, logits: torch.Tensor, k: int):
    classes = model.domains[domain]
    probabilities = logits[:classes].softmax(0)  # mixed batches pad logits with -inf
    values, indices = probabilities.topk(min(k, classes))
    card = model.card(domain)
    return [(card.class_name(int(c)), float(p)) for p, c in zip(values, indices, strict=True)]
