"""Top-1 evaluation per domain over a planned loader (one domain per batch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from multidomain.engine.batches import DomainBatches, Plan
from multidomain.engine.distributed import DistInfo, all_reduce_sum


@dataclass
class DomainResult:
    correct: int = 0
    count: int = 0
    loss_sum: float = 0.0
    predictions: list[int] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Top-1 in percent (NaN when nothing was labelled)."""
        return 100.0 * self.correct / self.count if self.count else float("nan")

    @property
    def loss(self) -> float:
        return self.loss_sum / self.count if self.count else float("nan")


def autocast(device: torch.device, precision: str):
    """The one mixed-precision code path: autocast enabled or not, on any device."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    return torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: DomainBatches,
    plan: Plan,
    device: torch.device,
    precision: str = "fp32",
    info: DistInfo | None = None,
) -> dict[str, DomainResult]:
    """Accuracy, loss and predictions (in plan order) per domain; labels of -1 are not scored."""
    info = info or DistInfo()
    model.eval()
    results: dict[str, DomainResult] = {}
    for domain, images, labels in batches.iterate(plan):
        images, labels = images.to(device, non_blocking=True), labels.to(device)
        with autocast(device, precision):
            logits = model(images, domain)
        result = results.setdefault(domain, DomainResult())
        predicted = logits.argmax(dim=1)
        result.predictions += predicted.tolist()
        labelled = labels >= 0
        if labelled.any():
            result.correct += int((predicted[labelled] == labels[labelled]).sum())
            result.count += int(labelled.sum())
            loss = F.cross_entropy(logits[labelled].float(), labels[labelled], reduction="sum")
            result.loss_sum += float(loss)
    for result in results.values():
        totals = torch.tensor([result.correct, result.count, result.loss_sum], dtype=torch.float64)
        result.correct, result.count, result.loss_sum = all_reduce_sum(totals, info).tolist()
    return results
